"""`workbench models list|prepare|load`, `workbench sites parse`, `workbench tasks show`."""
from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Optional

import typer

from .common import command, table, threads

models_app = typer.Typer(no_args_is_help=True, help="List, prepare and load models.")
sites_app = typer.Typer(no_args_is_help=True, help="Parse and resolve site addresses.")
tasks_app = typer.Typer(no_args_is_help=True, help="Show forget tasks.")


@models_app.command("list")
@command
def models_list():
    """Models the workbench knows and what is cached."""
    from .. import cache
    from ..models import ACCEPTED, known_specs

    typer.echo("Known specs: " + ", ".join(known_specs()))
    typer.echo(f"Accepted forms: {ACCEPTED}")
    typer.echo(f"Cache: {cache.cache_root()}")
    rows = []
    for path in cache.entries("models"):
        info = json.loads((path / "workbench.json").read_text()) if (path / "workbench.json").is_file() else {}
        rows.append({"spec": info.get("spec", "?"), "parameters": info.get("parameters"),
                     "seconds": info.get("train_seconds", info.get("convert_seconds")), "path": str(path)})
    typer.echo(table(rows, ["spec", "parameters", "seconds", "path"]) if rows else "(nothing cached yet)")


@models_app.command("prepare")
@command
def models_prepare(spec: str = typer.Argument(..., help="e.g. testbed:dense, testbed:moe, smollm2-135m-instruct"),
                   oracle: bool = typer.Option(True, help="also prepare the oracle twin (testbed)"),
                   allow_below_floor: bool = typer.Option(
                       False, "--allow-below-floor", help="exit 0 even when a quality-floor line is not met")):
    """Build a model into the cache (and its oracle twin); print its quality floor. A testbed
    model below the floor exits with code 3 (it stays in the cache) unless --allow-below-floor."""
    threads()
    from ..models import load, parse_kind

    kind = parse_kind(spec)
    t0 = time.time()
    loaded = load(spec)
    typer.echo(f"{loaded.spec}: {loaded.n_params:,} parameters at {loaded.path} ({time.time() - t0:.1f} s)")
    if kind != "testbed":
        print_real(loaded)
        return
    specs = [loaded]
    if oracle and loaded.oracle_spec:
        t0 = time.time()
        specs.append(load(loaded.oracle_spec))
        typer.echo(f"{specs[-1].spec}: oracle twin at {specs[-1].path} ({time.time() - t0:.1f} s)")
    verdict = print_quality(specs)
    if verdict.met:
        return
    steps = loaded.testbed.train_config.steps
    rule = replace(loaded.testbed, steps=None).train_config.steps  # the recipe's steps for this world
    longer = rule if steps < rule else 2 * steps  # the recipe's own steps first, then twice as many
    msg = (f"{loaded.spec} is below the quality floor: {verdict.summary()}. It stays in the cache; "
           f"train it longer (e.g. steps={longer} in the spec) or pass --allow-below-floor to use it as it is")
    if allow_below_floor:
        typer.echo(f"warning: {msg}", err=True)
        return
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(FLOOR_EXIT)


FLOOR_EXIT = 3  # a testbed model below the quality floor (2: bad input, 1: a bug)


def print_quality(loaded_models, brief: bool = False):
    """Print the knowledge tables of a testbed model (and its oracle) and the quality floor;
    returns the floor's `FloorVerdict`. With the oracle the measurement comes from the cache
    (`quality_report`)."""
    from ..models.knowledge import FloorVerdict, answerable, quality_report, testbed_quality

    if len(loaded_models) == 2:
        report = quality_report(loaded_models[0].spec)
        tables, verdict = report.tables, report.verdict
    else:
        _, tables, rows = testbed_quality(loaded_models)
        verdict = FloorVerdict(loaded_models[0].spec, tuple(rows))
    if brief:
        for m, t in zip(loaded_models, tables):
            accs = " / ".join(f"{s} {answerable(t, s):.3f}" for s in t)
            typer.echo(f"  {m.spec}: {accs} (every question form; trained in {m.info.get('train_seconds', '?')} s)")
        typer.echo("  quality floor: " + ("every target met" if verdict.met else "NOT met: " + verdict.summary()))
        return verdict
    typer.echo(loaded_models[0].task().summary())
    for m, t in zip(loaded_models, tables):
        typer.echo(f"\n{m.spec}  (trained in {m.info.get('train_seconds', '?')} s)")
        typer.echo(knowledge_rows(t))
    typer.echo("\nQuality floor")
    typer.echo(table([{**r, "ok": {True: "yes", False: "NO", None: ""}[r["ok"]]} for r in verdict.rows],
                     ["metric", "value", "target", "ok"]))
    return verdict


def knowledge_rows(t: dict) -> str:
    groups = sorted({g for cells in t.values() for g in cells})
    rows = [{"split": s, **{g: (cells[g].accuracy if g in cells else None) for g in groups},
             "facts x forms": sum(c.n for c in cells.values())} for s, cells in t.items()]
    return table(rows, ["split", *groups, "facts x forms"])


def print_real(m) -> None:
    """A pretrained model on the real-knowledge task: the usable set and its accuracies."""
    from ..models.knowledge import knowledge
    from ..tasks.realworld import all_facts

    task = m.task()
    typer.echo(f"usable facts (answered exactly in the main prompt form): "
               f"{len(task.all_facts)} of {len(all_facts())}")
    typer.echo(task.summary() + f" ({task.description})")
    typer.echo(knowledge_rows(knowledge(m.model, m.tokenizer, task, batch_size=32)))


@models_app.command("load")
@command
def models_load(spec: str):
    """Load a model and describe it (architecture, size, where it lives)."""
    threads()
    from ..models import load

    m = load(spec)
    typer.echo(f"{m.spec}: {type(m.model).__name__} ({m.arch.name}), {m.n_params:,} parameters, "
               f"{m.model.config.num_hidden_layers} layers, vocab {len(m.tokenizer)}, at {m.path}")


@sites_app.command("parse")
@command
def sites_parse(address: str, model: Optional[str] = typer.Option(None, help="resolve on this model")):
    """Parse a site address (and resolve it on a model)."""
    from ..sites import Site

    site = Site.parse(address)
    typer.echo(f"{site}  kind={site.kind} layer={site.layer} component={site.component}")
    if model:
        from ..models import load
        from ..models.arch import resolve

        m = load(model)
        r = resolve(site, m.model)
        for p in r.params:
            typer.echo(f"  param {p.name}{list(p.index)} shape {tuple(p.view(m.model).shape)}")
        if r.module:
            typer.echo(f"  activation: {r.io} of {r.module}" + (f" [..., {r.act_index[0]}]" if r.act_index else ""))


@tasks_app.command("show")
@command
def tasks_show(model: str = typer.Option("testbed:dense", help="the model whose default task to show"),
               examples: int = typer.Option(2, help="facts per split to render")):
    """Show a model's default forget task: splits and every surface form of a few facts."""
    from ..models import parse_kind, testbed
    from ..tasks.realworld import real_task
    from ..tasks.world import World

    task = World(testbed.TestbedSpec.parse(model).world).task() if parse_kind(model) == "testbed" else real_task()
    typer.echo(task.summary())
    for split in ("forget", "retain", "neighbour"):
        for fact in task.facts(split)[:examples]:
            typer.echo(f"\n[{split}] {fact.subject} / {fact.relation} = {fact.answer}")
            for form in task.forms:
                ex = task.render(fact, form)
                typer.echo(f"  {form:12s} {'trained' if ex.trained else 'held-out':9s} {ex.prompt} -> {ex.answer}")
