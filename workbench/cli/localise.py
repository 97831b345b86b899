"""`workbench localise` (score sites, save the Localisation, check faithfulness) and
`workbench agreement` (compare saved localisations)."""
from __future__ import annotations

import shutil
from typing import Optional

import typer

from ..cache import replacing
from .common import command, list_registry, model_and_task, output_dir, table


@command
def localise_cmd(
    model: str = typer.Option("testbed:dense", help="model spec (see `workbench models list`)"),
    task: str = typer.Option("default", help="default | real:TOPIC"),
    method: Optional[str] = typer.Option(None, help="localiser name (see --list)"),
    option: Optional[list[str]] = typer.Option(None, "--option", "-o", help="localiser option key=value (repeatable)"),
    out: Optional[str] = typer.Option(None, help="also copy the artifact to this directory (new, empty, or a "
                                                 "localisation to replace)"),
    force: bool = typer.Option(False, help="--out: write into a directory that holds other files (none is deleted)"),
    top: int = typer.Option(15, help="how many top sites to print"),
    check: bool = typer.Option(False, "--check", help="faithfulness: edit the top sites vs random sites"),
    budgets: str = typer.Option("0.01,0.05", help="--check budgets: fractions of the model's eligible parameters "
                                                  "(norm gains, embeddings and unembedding left out)"),
    draws: int = typer.Option(20, help="--check random draws per budget"),
    all_weights: bool = typer.Option(False, "--all-weights", help="--check of a weight localisation: also zero norm "
                                                                  "gains, embeddings and the unembedding"),
    fresh: bool = typer.Option(False, help="recompute even if the cache holds this result"),
    list_: bool = typer.Option(False, "--list", help="list the localisers and their options"),
):
    """Localise the forget knowledge: score sites, save the Localisation, print the top
    sites and a per-layer summary (and, with --check, the faithfulness tables)."""
    from ..errors import WorkbenchInputError
    from ..localise import LOCALISERS
    from ..registry import config_from_dict, parse_options

    if list_:
        return list_registry(LOCALISERS)
    if not method:
        raise WorkbenchInputError(f"--method is required; expected one of: {', '.join(LOCALISERS.names())}")
    options = parse_options(option)
    config_from_dict(LOCALISERS.get(method).Config, options)  # bad options fail before any loading
    target = output_dir(out, "localisation", "localisation.json", force) if out else None
    try:
        fractions = [float(b) for b in budgets.split(",") if b.strip()]
    except ValueError:
        raise WorkbenchInputError(f"--budgets {budgets!r}: expected comma-separated fractions, e.g. 0.01,0.05") from None
    pipe, loaded, forget_task = model_and_task(model, task)
    typer.echo(forget_task.summary())
    res = pipe.localise(loaded, forget_task, method, options, fresh=fresh)
    loc, path = res.localisation, res.path
    if target is not None:
        target.mkdir(parents=True, exist_ok=True)
        for name in ("scores.safetensors", "localisation.json"):  # the artefact's files, each replaced whole
            with replacing(target / name) as tmp:
                shutil.copyfile(path / name, tmp)
        path = target
    secs = loc.provenance.get("seconds")
    typer.echo(f"\n{method} on {model}: {len(loc.sites)} {loc.kind} sites"
               + (f", {loc.n_scalars} scored weights" if loc.kind == "weight" else "")
               + f" ({'cached' if res.reused else f'{secs:.1f} s'}) -> {path}")
    typer.echo("\ntop sites:")
    typer.echo(table([{"rank": i + 1, "site": str(s), "score": float(v)} for i, (s, v) in enumerate(loc.ranked()[:top])]))
    typer.echo("\nper layer (selected = top 1%):")
    typer.echo(table(loc.per_layer(fraction=0.01), ["layer", "component", "sites", "selected", "score_sum",
                                                    "score_max"]))
    if check:
        for result in pipe.check(loaded, forget_task, loc, budgets=fractions, draws=draws, all_weights=all_weights):
            typer.echo(f"\nfaithfulness: {result.title}")
            typer.echo(table(result.rows, result.columns))
            for note in result.notes:
                typer.echo(f"  {note}")


@command
def agreement_cmd(paths: list[str] = typer.Argument(..., help="localisation directories (two or more)"),
                  k: int = typer.Option(3, help="top-k cells for the Jaccard index")):
    """Agreement between saved localisations at the shared (layer, component) granularity."""
    from ..errors import WorkbenchInputError
    from ..localise import Localisation, agreement

    if len(paths) < 2:
        raise WorkbenchInputError("agreement needs two or more localisation directories")
    locs = {}
    for p in paths:
        loc = Localisation.load(p)
        label = loc.name + (f"[{loc.provenance['config'].get('mode')}]" if "mode" in loc.provenance.get("config", {}) else "")
        while label in locs:
            label += "'"
        locs[label] = loc
    typer.echo(table(agreement(locs, k=k)))
