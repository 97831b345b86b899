"""The `workbench` command (typer). Bad input ends in one `error: ...` line, exit code 2."""
from __future__ import annotations

import functools
import json
import os
import sys
import time
from typing import Callable, Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Interpretability-driven unlearning workbench: localise, edit, probe.")
models_app = typer.Typer(no_args_is_help=True, help="List, prepare and load models.")
sites_app = typer.Typer(no_args_is_help=True, help="Parse and resolve site addresses.")
tasks_app = typer.Typer(no_args_is_help=True, help="Show forget tasks.")
app.add_typer(models_app, name="models")
app.add_typer(sites_app, name="sites")
sae_app = typer.Typer(no_args_is_help=True, help="Train SAEs (sae-lens) and show feature cards.")
app.add_typer(tasks_app, name="tasks")
app.add_typer(sae_app, name="sae")
study_app = typer.Typer(no_args_is_help=True, help="Scripted ablation studies: run, status, report, export.")
app.add_typer(study_app, name="study")


def _user_errors(fn: Callable) -> Callable:
    """User mistakes (ValueError, FileNotFoundError) print one clear line, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ValueError, FileNotFoundError) as exc:
            if os.environ.get("WORKBENCH_DEBUG"):
                raise
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None

    return wrapper


def _threads() -> None:
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))


def _model_and_task(model: str, task: str):
    """Load a model (threads set for this machine) and its forget task."""
    _threads()
    from .models import load
    from .tasks import task_for

    loaded = load(model)
    return loaded, task_for(loaded, task)


def table(rows: list[dict], columns: list[str] | None = None) -> str:
    """Plain-text table; floats print with three decimals."""
    if not rows:
        return "(empty)"
    columns = columns or list(rows[0])
    def fmt(v) -> str:
        if isinstance(v, float):
            return f"{v:.2e}" if v != 0 and abs(v) < 1e-3 else f"{v:.3f}"
        return "" if v is None else str(v)
    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths)).rstrip()  # noqa: E731
    return "\n".join([line(columns), line(["-" * w for w in widths]), *map(line, cells)])


# -- models ------------------------------------------------------------------------------
@models_app.command("list")
@_user_errors
def models_list():
    """Models the workbench knows and what is cached."""
    from . import cache
    from .models import ACCEPTED, known_specs

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
@_user_errors
def models_prepare(spec: str = typer.Argument(..., help="e.g. testbed:dense, testbed:moe, smollm2-135m-instruct"),
                   oracle: bool = typer.Option(True, help="also prepare the oracle twin (testbed)")):
    """Build a model into the cache (and its oracle twin); print its quality floor."""
    _threads()
    from .models import load, parse_kind

    kind = parse_kind(spec)
    t0 = time.time()
    loaded = load(spec)
    typer.echo(f"{loaded.spec}: {loaded.n_params:,} parameters at {loaded.path} ({time.time() - t0:.1f} s)")
    if kind != "testbed":
        _print_real(loaded)
        return
    specs = [loaded]
    if oracle and loaded.oracle_spec:
        t0 = time.time()
        specs.append(load(loaded.oracle_spec))
        typer.echo(f"{specs[-1].spec}: oracle twin at {specs[-1].path} ({time.time() - t0:.1f} s)")
    _print_quality(specs)


def _print_quality(loaded_models, brief: bool = False) -> None:
    from .models.knowledge import chance, knowledge, quality_floor
    from .tasks.world import World

    full = loaded_models[0]
    world = World(full.testbed.world)
    task = world.task()
    tables = [knowledge(m.model, m.tokenizer, task) for m in loaded_models]
    rows = quality_floor(tables[0], tables[1] if len(tables) > 1 else None, chance(task, "forget", world))
    if brief:
        from .models.knowledge import _answerable

        for m, t in zip(loaded_models, tables):
            accs = " / ".join(f"{s} {_answerable(t, s):.3f}" for s in t)
            typer.echo(f"  {m.spec}: {accs} (every question form; trained in {m.info.get('train_seconds', '?')} s)")
        bad = [r["metric"] for r in rows if r["ok"] is False]
        typer.echo("  quality floor: " + ("every target met" if not bad else "NOT met: " + "; ".join(bad)))
        return
    typer.echo(task.summary())
    for m, t in zip(loaded_models, tables):
        typer.echo(f"\n{m.spec}  (trained in {m.info.get('train_seconds', '?')} s)")
        typer.echo(_knowledge_rows(t))
    typer.echo("\nQuality floor")
    typer.echo(table([{**r, "ok": {True: "yes", False: "NO", None: ""}[r["ok"]]} for r in rows],
                     ["metric", "value", "target", "ok"]))


def _knowledge_rows(t: dict) -> str:
    groups = sorted({g for cells in t.values() for g in cells})
    rows = [{"split": s, **{g: (cells[g].accuracy if g in cells else None) for g in groups},
             "facts x forms": sum(c.n for c in cells.values())} for s, cells in t.items()]
    return table(rows, ["split", *groups, "facts x forms"])


def _print_real(m) -> None:
    """A pretrained model on the real-knowledge task: the usable set and its accuracies."""
    from .models.knowledge import knowledge
    from .tasks.realworld import all_facts

    task = m.task()
    typer.echo(f"usable facts (answered exactly in the main prompt form): "
               f"{len(task.all_facts)} of {len(all_facts())}")
    typer.echo(task.summary() + f" ({task.description})")
    typer.echo(_knowledge_rows(knowledge(m.model, m.tokenizer, task, batch_size=32)))


@models_app.command("load")
@_user_errors
def models_load(spec: str):
    """Load a model and describe it (architecture, size, where it lives)."""
    _threads()
    from .models import load

    m = load(spec)
    typer.echo(f"{m.spec}: {type(m.model).__name__} ({m.arch.name}), {m.n_params:,} parameters, "
               f"{m.model.config.num_hidden_layers} layers, vocab {len(m.tokenizer)}, at {m.path}")


# -- sites / tasks --------------------------------------------------------------------------
@sites_app.command("parse")
@_user_errors
def sites_parse(address: str, model: Optional[str] = typer.Option(None, help="resolve on this model")):
    """Parse a site address (and resolve it on a model)."""
    from .sites import Site

    site = Site.parse(address)
    typer.echo(f"{site}  kind={site.kind} layer={site.layer} component={site.component}")
    if model:
        from .models import load
        from .models.arch import resolve

        m = load(model)
        r = resolve(site, m.model)
        for p in r.params:
            typer.echo(f"  param {p.name}{list(p.index)} shape {tuple(p.view(m.model).shape)}")
        if r.module:
            typer.echo(f"  activation: {r.io} of {r.module}" + (f" [..., {r.act_index[0]}]" if r.act_index else ""))


@tasks_app.command("show")
@_user_errors
def tasks_show(model: str = typer.Option("testbed:dense", help="the model whose default task to show"),
               examples: int = typer.Option(2, help="facts per split to render")):
    """Show a model's default forget task: splits and every surface form of a few facts."""
    from .models import parse_kind, testbed
    from .tasks.realworld import real_task
    from .tasks.world import World

    task = World(testbed.TestbedSpec.parse(model).world).task() if parse_kind(model) == "testbed" else real_task()
    typer.echo(task.summary())
    for split in ("forget", "retain", "neighbour"):
        for fact in task.facts(split)[:examples]:
            typer.echo(f"\n[{split}] {fact.subject} / {fact.relation} = {fact.answer}")
            for form in task.forms:
                ex = task.render(fact, form)
                typer.echo(f"  {form:12s} {'trained' if ex.trained else 'held-out':9s} {ex.prompt} -> {ex.answer}")


def _list_registry(registry) -> None:
    """Each entry of a registry: name, summary and options with their defaults."""
    import dataclasses

    width = max(len(n) for n in registry.names()) + 1
    for name in registry.names():
        cls = registry.get(name)
        opts = ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(cls.Config))
        typer.echo(f"{name:{width}s} {cls.summary}\n{'':{width}s} options: {opts}")


# -- localise -----------------------------------------------------------------------------
@app.command("localise")
@_user_errors
def localise_cmd(
    model: str = typer.Option("testbed:dense", help="model spec (see `workbench models list`)"),
    task: str = typer.Option("default", help="default | real:TOPIC"),
    method: Optional[str] = typer.Option(None, help="localiser name (see --list)"),
    option: Optional[list[str]] = typer.Option(None, "--option", "-o", help="localiser option key=value (repeatable)"),
    out: Optional[str] = typer.Option(None, help="also copy the artifact to this directory"),
    top: int = typer.Option(15, help="how many top sites to print"),
    check: bool = typer.Option(False, "--check", help="faithfulness: ablate top vs random sites"),
    budgets: str = typer.Option("0.01,0.05", help="--check budgets (fractions of the site kind)"),
    draws: int = typer.Option(5, help="--check random draws per budget"),
    fresh: bool = typer.Option(False, help="recompute even if the cache holds this result"),
    list_: bool = typer.Option(False, "--list", help="list the localisers and their options"),
):
    """Localise the forget knowledge: score sites, save the Localisation, print the top
    sites and a per-layer summary (and, with --check, the faithfulness table)."""
    import shutil

    from .localise import LOCALISERS, faithfulness
    from .localise.base import localise_cached
    from .registry import parse_options

    if list_:
        return _list_registry(LOCALISERS)
    if not method:
        raise ValueError(f"--method is required; expected one of: {', '.join(LOCALISERS.names())}")
    from .registry import config_from_dict

    options = parse_options(option)
    config_from_dict(LOCALISERS.get(method).Config, options)  # bad options fail before any loading
    fractions = [float(b) for b in budgets.split(",") if b.strip()]
    loaded, forget_task = _model_and_task(model, task)
    typer.echo(forget_task.summary())
    loc, path, reused = localise_cached(loaded, forget_task, method, options, progress=True, fresh=fresh)
    if out:
        if os.path.exists(out):
            shutil.rmtree(out)
        shutil.copytree(path, out)
        path = out
    secs = loc.provenance.get("seconds")
    typer.echo(f"\n{method} on {model}: {len(loc.sites)} {loc.kind} sites"
               + (f", {loc.n_scalars} scored weights" if loc.kind == "weight" else "")
               + f" ({'cached' if reused else f'{secs:.1f} s'}) -> {path}")
    typer.echo("\ntop sites:")
    typer.echo(table([{"rank": i + 1, "site": str(s), "score": float(v)} for i, (s, v) in enumerate(loc.ranked()[:top])]))
    typer.echo("\nper layer (selected = top 1%):")
    rows = loc.per_layer(fraction=0.01)
    typer.echo(table(rows, ["layer", "component", "sites", "selected", "score_sum", "score_max"]))
    if check and loc.kind == "feature":
        from .localise.sae import clamp_check

        typer.echo("\nfaithfulness: clamp the top-N SAE features vs N random features of similar firing rate")
        rows = [clamp_check(loaded, forget_task, loc, n=n, draws=draws) for n in (10, 20)]
        typer.echo(table(rows, ["n", "c", "forget_drop", "random_forget_drop", "ratio_vs_random", "retain_drop",
                                "random_retain_drop", "pass"]))
    elif check and loc.kind == "expert":
        from .edit.checks import expert_removal_check

        typer.echo("\nfaithfulness: remove the top expert from its router's top-k vs random experts of other layers")
        typer.echo(table([expert_removal_check(loaded, forget_task, loc, draws=draws)],
                         ["site", "forget_drop", "random_forget_drop", "ratio_vs_random", "retain_drop",
                          "random_retain_drop", "pass"]))
    elif check:
        typer.echo("\nfaithfulness: top sites vs random sites of the same kind (drops in accuracy)")
        rows = [r.as_dict() for r in faithfulness(loaded, forget_task, loc, budgets=fractions, draws=draws, progress=True)]
        typer.echo(table(rows, ["budget", "n", "forget_drop", "random_forget_drop", "ratio_vs_random",
                                "retain_drop", "random_retain_drop", "pass"]))
        if method == "concept":
            from .localise.concept import causal_check

            res = causal_check(loaded, forget_task, loc, n=20, sigma=0.1)
            typer.echo("\ncausal validation: N(0, 0.1^2) noise on the top 20 value vectors, weights restored after")
            typer.echo(table([res], ["vectors", "forget_before", "forget_after", "retain_before", "retain_after",
                                     "forget_drop", "retain_drop", "restored"]))


@app.command("agreement")
@_user_errors
def agreement_cmd(paths: list[str] = typer.Argument(..., help="localisation directories (two or more)"),
                  k: int = typer.Option(3, help="top-k cells for the Jaccard index")):
    """Agreement between saved localisations at the shared (layer, component) granularity."""
    from .localise import Localisation, agreement

    if len(paths) < 2:
        raise ValueError("agreement needs two or more localisation directories")
    locs = {}
    for p in paths:
        loc = Localisation.load(p)
        label = loc.name + (f"[{loc.provenance['config'].get('mode')}]" if "mode" in loc.provenance.get("config", {}) else "")
        while label in locs:
            label += "'"
        locs[label] = loc
    typer.echo(table(agreement(locs, k=k)))


# -- sae ----------------------------------------------------------------------------------
@sae_app.command("train")
@_user_errors
def sae_train(
    model: str = typer.Option("testbed:dense", help="model spec"),
    layer: Optional[str] = typer.Option(None, help="comma-separated layers (resid_post); default: the middle layer"),
    option: Optional[list[str]] = typer.Option(None, "--option", "-o", help="SAE option key=value (see --list)"),
    list_: bool = typer.Option(False, "--list", help="list the SAE options"),
):
    """Train SAEs with sae-lens on a model's residual stream (cached); print L0, explained
    variance, dead-feature fraction and training time per layer."""
    import dataclasses

    from .registry import config_from_dict, parse_options
    from .sae import SAEConfig, hook_name, train_sae

    if list_:
        typer.echo("options: " + ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(SAEConfig)))
        return
    options = parse_options(option)
    config_from_dict(SAEConfig, options)
    try:
        layers = [int(x) for x in layer.split(",")] if layer else [None]
    except ValueError:
        raise ValueError(f"--layer {layer!r}: expected comma-separated layer numbers") from None
    _threads()
    from .models import load

    loaded = load(model)
    rows = []
    for L in layers:
        cfg = config_from_dict(SAEConfig, {**options, "layer": L})
        _, metrics, path, built = train_sae(loaded, cfg, progress=True)
        rows.append({"site": hook_name(cfg.resolved_layer(loaded.model.config.num_hidden_layers)),
                     "d_sae": metrics["d_sae"], "l0": metrics["l0"], "explained_variance": metrics["explained_variance"],
                     "dead_fraction": metrics["dead_fraction"], "train_s": metrics["train_seconds"],
                     "cached": not built, "path": str(path)})
    typer.echo(table(rows))


@sae_app.command("cards")
@_user_errors
def sae_cards(localisation: str = typer.Argument(..., help="a saved SAE feature localisation (--method sae)"),
              n: int = typer.Option(10, help="how many top features"),
              model: Optional[str] = typer.Option(None, help="model spec (default: the localisation's)"),
              task: str = typer.Option("default", help="default | real:TOPIC")):
    """Feature cards of the top selected features: firing rate, top-activating contexts in the
    forget text, top vocabulary tokens of the decoder direction."""
    from .localise import Localisation
    from .localise.sae import feature_cards
    from .sae import cached_sae

    loc = Localisation.load(localisation)
    if loc.kind != "feature":
        raise ValueError(f"localisation {localisation!r} holds {loc.kind} sites: expected SAE features (--method sae)")
    loaded, forget_task = _model_and_task(model or loc.provenance["model"], task)
    texts = [e.text for e in forget_task.examples("forget") if e.kind != "mcq"]
    top = loc.top(k=n)
    for card in feature_cards(loaded, cached_sae(loc.provenance["sae"]), top[0].layer, [s.feature for s in top], texts):
        typer.echo(f"\nfeature {card['feature']}  firing rate {card['firing_rate']:.3f}")
        typer.echo("  tokens:   " + " ".join(card["top_tokens"]))
        for ctx in card["contexts"]:
            typer.echo(f"  {ctx['activation']:7.2f}  {ctx['text']}")


# -- edit ---------------------------------------------------------------------------------
@app.command("edit")
@_user_errors
def edit_cmd(
    model: str = typer.Option("testbed:dense", help="model spec"),
    task: str = typer.Option("default", help="default | real:TOPIC"),
    operator: Optional[str] = typer.Option(None, help="operator name (see --list)"),
    option: Optional[list[str]] = typer.Option(None, "--option", "-o", help="operator option key=value"),
    localisation: Optional[str] = typer.Option(None, help="a saved localisation directory"),
    method: Optional[str] = typer.Option(None, help="or: run this localiser first"),
    loc_option: Optional[list[str]] = typer.Option(None, "--loc-option", "-l", help="localiser option key=value"),
    out: Optional[str] = typer.Option(None, help="save the edit here (edit.safetensors + edit.json)"),
    export: Optional[str] = typer.Option(None, help="also export a plain HF checkpoint here"),
    max_facts: Optional[int] = typer.Option(None, help="facts per split in the evaluation (default all)"),
    list_: bool = typer.Option(False, "--list", help="list the operators and their options"),
):
    """Edit a model: apply an operator (ablation or masked fine-tuning) to a localisation,
    then print forget / retain / neighbour accuracy next to the original (and the oracle)."""

    from .edit import OPERATORS, apply_operator
    from .registry import config_from_dict, parse_options

    if list_:
        return _list_registry(OPERATORS)
    if not operator:
        raise ValueError(f"--operator is required; expected one of: {', '.join(OPERATORS.names())}")
    if localisation and method:
        raise ValueError("give --localisation PATH or --method NAME, not both")
    options = parse_options(option)
    config_from_dict(OPERATORS.get(operator).Config, options)
    loc = None
    if localisation:
        from .localise import Localisation
        loc = Localisation.load(localisation)
    from .models import load
    from .models.knowledge import split_accuracy

    loaded, forget_task = _model_and_task(model, task)
    if method:
        from .localise.base import localise_cached
        loc, path, _ = localise_cached(loaded, forget_task, method, parse_options(loc_option))
        typer.echo(f"localisation {method}: {path}")
    edit = apply_operator(loaded, loc, forget_task, operator, options)
    if edit.provenance.get("stopped"):
        typer.echo(f"stopped early: {edit.provenance['stopped']}")
    rows = [{"model": "original", **split_accuracy(loaded.model, loaded.tokenizer, forget_task, max_facts=max_facts)}]
    with edit.applied(loaded.model):
        rows.append({"model": f"edited ({operator})",
                     **split_accuracy(loaded.model, loaded.tokenizer, forget_task, max_facts=max_facts)})
    if loaded.oracle_spec:
        oracle = load(loaded.oracle_spec, progress=False)
        rows.append({"model": "oracle", **split_accuracy(oracle.model, oracle.tokenizer, forget_task, max_facts=max_facts)})
    else:
        typer.echo("(no oracle for this model)")
    typer.echo(f"\n{operator}: {edit.changed_params} weights changed, {len(edit.interventions)} hook interventions, "
               f"{edit.provenance['seconds']:.1f} s")
    typer.echo(table(rows, ["model", "forget", "retain", "neighbour"]))
    if out:
        typer.echo(f"edit saved to {edit.save(out)}")
    if export:
        typer.echo(f"HF checkpoint exported to {edit.export(loaded, export)}")


# -- probe ---------------------------------------------------------------------------------
def _dir_identity(path: str) -> str:
    """Content hash of every file in a directory (an edit's identity for the probe cache)."""
    import hashlib
    from pathlib import Path

    h = hashlib.sha256()
    for f in sorted(Path(path).rglob("*")):
        if f.is_file():
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


@app.command("probe")
@_user_errors
def probe_cmd(
    model: str = typer.Option("testbed:dense", help="model spec"),
    task: str = typer.Option("default", help="default | real:TOPIC"),
    edit: Optional[str] = typer.Option(None, help="a saved edit directory (from `workbench edit --out`)"),
    oracle: str = typer.Option("auto", help="auto (the model's oracle twin, if it has one) | none | a model spec"),
    probes: Optional[str] = typer.Option(None, help="comma-separated probe families (default: all; see --list)"),
    option: Optional[list[str]] = typer.Option(None, "--option", "-o", help="probe option key=value (see --list)"),
    json_out: Optional[str] = typer.Option(None, "--json", help="write the full result (JSON) here"),
    figures: Optional[str] = typer.Option("probe-figures", help="write plotly figures (HTML) to this directory"),
    fresh: bool = typer.Option(False, help="recompute even if the cache holds the measurements"),
    list_: bool = typer.Option(False, "--list", help="list the probe families and the options"),
):
    """Probe the original, the edited and the oracle model side by side: behaviour, TOFU and
    MUSE metrics, membership inference, parametric traces, latent probes, prompt-level and
    relearning attacks. Prints the table; writes the JSON result and the figures."""
    import dataclasses

    from probes import FAMILIES, ProbeConfig, probe
    from probes.figures import write_figures
    from .registry import config_from_dict, parse_options

    if list_:
        for name in FAMILIES.names():
            typer.echo(f"{name:10s} {FAMILIES.get(name).summary}")
        typer.echo("options: " + ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(ProbeConfig)))
        return
    options = parse_options(option)
    if probes:
        options["families"] = probes
    config = config_from_dict(ProbeConfig, options)
    config.check()
    edit_obj = None
    if edit:
        from .edit import Edit
        edit_obj = Edit.load(edit)
    from probes import Edited

    loaded, forget_task = _model_and_task(model, task)
    typer.echo(forget_task.summary())
    edited = None
    if edit_obj is not None:
        edited = Edited(edit_obj.operator, lambda: edit_obj.applied(loaded.model), _dir_identity(edit))
    result = probe(loaded, forget_task, edited=edited, oracle=None if oracle == "none" else oracle,
                   config=config, progress=True, use_cache=not fresh)
    typer.echo("")
    typer.echo(result.table())
    if json_out:
        typer.echo(f"\nresult written to {result.save(json_out)}")
    if figures:
        paths = write_figures(result, figures)
        typer.echo("figures: " + ", ".join(str(p) for p in paths))


# -- study ---------------------------------------------------------------------------------
_STUDY_ARG = typer.Argument(..., help="a study TOML file, a bundled study (default, quick), or a run directory")
_OUT_OPT = typer.Option(None, "--out", help="the run directory (default: runs/<study name>)")


def _study_store(study: str, out: Optional[str]):
    """(Study or None, run directory) for a study file / bundled name / run directory."""
    from pathlib import Path

    from .study import default_out, load_study

    p = Path(study)
    if p.is_dir() and (p / "study.sqlite").is_file():
        return None, p
    if p.is_file() and p.suffix in (".sqlite", ".db"):
        return None, p.parent
    st = load_study(study)
    return st, Path(out) if out else default_out(st)


@study_app.command("run")
@_user_errors
def study_run(study: str = _STUDY_ARG, out: Optional[str] = _OUT_OPT,
              executor: str = typer.Option("local", help="local | process | ray"),
              workers: int = typer.Option(1, help="process executor: worker processes"),
              address: Optional[str] = typer.Option(None, help="ray executor: the cluster address (default: a local Ray)"),
              report: bool = typer.Option(True, help="write the HTML report when done"),
              retry_failed: bool = typer.Option(True, help="rerun cells that failed before")):
    """Run a study: every cell not yet in the store (localise -> edit -> probe); a killed run
    resumes where it stopped. Prints the headline table and writes the report."""
    from .study import EXECUTORS, load_study, run_study

    if executor not in EXECUTORS:
        raise ValueError(f"--executor {executor!r}: expected one of {', '.join(EXECUTORS)}")
    st = load_study(study)
    _threads()
    run = run_study(st, out=out, executor=executor, workers=workers, address=address, retry_failed=retry_failed)
    typer.echo(f"\nstudy {st.name}: {len(run.cells)} cells, {len(run.ran)} run now, {len(run.skipped)} already "
               f"stored, {len(run.failed)} failed ({run.seconds:.0f} s) -> {run.store_path}")
    _print_headline(run.store_path, [c.id for c in run.cells])
    if report:
        from .study import write_report

        typer.echo(f"report: {write_report(run.store_path, ids=[c.id for c in run.cells])}")


def _print_headline(store_path, ids=None) -> None:
    from .study import Store
    from .study.report import headline_table, reference_rows, study_rows

    with Store(store_path) as store:
        rows = headline_table(study_rows(store, ids), reference_rows(store, ids))
    typer.echo(table(rows, ["model", "localiser", "operator", "budget", "seed", "forget", "retain", "neighbour",
                            "forget_quality", "mia_auc", "latent", "relearned", "concept_cos", "seconds"]))


@study_app.command("status")
@_user_errors
def study_status(study: str = _STUDY_ARG, out: Optional[str] = _OUT_OPT):
    """Which cells are done, failed or still to run."""
    from .study import Store

    st, run_dir = _study_store(study, out)
    stored = {}
    if (run_dir / "study.sqlite").is_file():
        with Store(run_dir / "study.sqlite") as store:
            stored = {c["cell_id"]: c for c in store.cells()}
    cells = st.cells() if st is not None else []
    rows = [{"cell": c.id, "what": c.label, "status": stored.get(c.id, {}).get("status", "to run"),
             "seconds": stored.get(c.id, {}).get("seconds")} for c in cells]
    planned = {c.id for c in cells}
    rows += [{"cell": i, "what": f"{c['model']} | {c['localiser']} -> {c['operator']}", "status": c["status"],
              "seconds": c["seconds"]} for i, c in stored.items() if i not in planned]
    typer.echo(table(rows, ["cell", "what", "status", "seconds"]))
    counts = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    typer.echo(f"\n{run_dir / 'study.sqlite'}: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    for i, c in stored.items():
        if c["status"] == "failed":
            typer.echo(f"failed {i}: {c['error']}")


@study_app.command("report")
@_user_errors
def study_report(study: str = _STUDY_ARG, out: Optional[str] = _OUT_OPT,
                 html: Optional[str] = typer.Option(None, help="where to write the HTML (default: <run dir>/report.html)")):
    """Write the study's self-contained HTML report (plotly figures + a sortable table)."""
    from .study import write_report

    st, run_dir = _study_store(study, out)
    ids = [c.id for c in st.cells()] if st is not None else None
    path = write_report(run_dir / "study.sqlite", html, ids=ids)
    _print_headline(run_dir / "study.sqlite", ids)
    typer.echo(f"report: {path}")


@study_app.command("export")
@_user_errors
def study_export(study: str = _STUDY_ARG, out: Optional[str] = _OUT_OPT,
                 file: str = typer.Option(..., "--file", "-f", help="output file (.csv or .parquet)"),
                 format: Optional[str] = typer.Option(None, help="csv | parquet (default: from the file name)")):
    """Export one row per cell (coordinates + every metric per role) as CSV or Parquet."""
    from .study import Store

    fmt = format or file.rsplit(".", 1)[-1].lower()
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"export format {fmt!r}: expected csv or parquet")
    st, run_dir = _study_store(study, out)
    if not (run_dir / "study.sqlite").is_file():
        raise FileNotFoundError(f"study store {str(run_dir / 'study.sqlite')!r} does not exist: run the study first")
    import pandas as pd

    with Store(run_dir / "study.sqlite") as store:
        frame = pd.DataFrame(store.wide([c.id for c in st.cells()] if st is not None else None))
    if fmt == "csv":
        frame.to_csv(file, index=False)
    else:
        frame.to_parquet(file, index=False)
    typer.echo(f"{len(frame)} cells x {frame.shape[1]} columns -> {file}")


# -- app ----------------------------------------------------------------------------------
@app.command("app")
@_user_errors
def app_cmd(port: int = typer.Option(8501, help="the port to serve on"),
            headless: bool = typer.Option(True, help="do not open a browser window")):
    """Start the Streamlit app (model & task, localise, edit, probe, studies)."""
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py"
    if not script.is_file():
        raise FileNotFoundError(f"the app is not at {str(script)!r}: it runs from a checkout of the repository")
    typer.echo(f"the app: http://localhost:{port}  (Ctrl-C stops it)")
    sys.stdout.flush()
    # replace this process by the server, so that stopping it (Ctrl-C, SIGTERM) stops the app
    os.execv(sys.executable, [sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(port),
                              "--server.headless", str(headless).lower(), "--browser.gatherUsageStats", "false"])


# -- demo ---------------------------------------------------------------------------------
@app.command()
@_user_errors
def demo(study: str = typer.Option("default", help="the study to run: a TOML file or a bundled study"),
         out: Optional[str] = typer.Option(None, help="the run directory (default: runs/<study name>)"),
         smollm2: bool = typer.Option(False, help="also load SmolLM2-135M-Instruct and show what it knows")):
    """The whole story on the embedded default: train the testbed models and their oracle
    twins (once, cached), run the default study (every localiser, the main operators, the core
    probes incl. a relearning attack, each next to the original and the oracle), print the
    headline table and write the HTML report."""
    from .models import load
    from .study import load_study, run_study, write_report
    from .study.runner import prepare_testbeds

    _threads()
    t0 = time.time()
    st = load_study(study)
    typer.echo("[1/4] the testbed models and their oracle twins (trained once, two at a time, then cached)")
    specs = prepare_testbeds([m.spec for m in st.models])
    for tb in specs:
        if not tb.oracle:
            _print_quality([load(str(tb), progress=False), load(str(tb.twin()), progress=False)], brief=True)
    typer.echo(f"\n[2/4] study {st.name!r}: {len(st.cells())} cells (localise -> edit -> probe), "
               f"results stored as they finish")
    run = run_study(st, out=out)
    cells = [c.id for c in run.cells]
    typer.echo(f"\n[3/4] headline ({len(run.ran)} cells run now, {len(run.skipped)} from the store, "
               f"{len(run.failed)} failed); edited-model values, the original and the oracle as references")
    _print_headline(run.store_path, cells)
    report = write_report(run.store_path, ids=cells)
    typer.echo(f"\n[4/4] report: {report.resolve()}  (one self-contained HTML file: open it in a browser)")
    typer.echo(f"      store: {run.store_path.resolve()}  (`workbench study status|report|export {st.name}`)")
    typer.echo("      the app: `workbench app`, then http://localhost:8501 (Studies page: this store)")
    if smollm2:
        typer.echo("\n=== smollm2-135m-instruct on the real-knowledge task ===")
        _print_real(load("smollm2-135m-instruct"))
    typer.echo(f"\ndemo finished in {time.time() - t0:.0f} s")


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
