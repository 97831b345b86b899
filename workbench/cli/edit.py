"""`workbench edit`: apply an operator to a localisation; accuracy next to the original and
the oracle; save or export the edit."""
from __future__ import annotations

from typing import Optional

import typer

from .common import command, list_registry, model_and_task, output_dir, table


@command
def edit_cmd(
    model: str = typer.Option("testbed:dense", help="model spec"),
    task: str = typer.Option("default", help="default | real:TOPIC"),
    operator: Optional[str] = typer.Option(None, help="operator name (see --list)"),
    option: Optional[list[str]] = typer.Option(None, "--option", "-o", help="operator option key=value"),
    localisation: Optional[str] = typer.Option(None, help="a saved localisation directory"),
    method: Optional[str] = typer.Option(None, help="or: run this localiser first"),
    loc_option: Optional[list[str]] = typer.Option(None, "--loc-option", "-l", help="localiser option key=value"),
    out: Optional[str] = typer.Option(None, help="save the edit here (edit.safetensors + edit.json): a new or "
                                                 "empty directory, or an edit to replace"),
    force: bool = typer.Option(False, help="--out: write into a directory that holds other files (none is deleted)"),
    export: Optional[str] = typer.Option(None, help="also export a plain HF checkpoint here"),
    max_facts: Optional[int] = typer.Option(None, help="facts per split in the evaluation (default all)"),
    fresh: bool = typer.Option(False, help="recompute even if the cache holds this edit"),
    list_: bool = typer.Option(False, "--list", help="list the operators and their options"),
):
    """Edit a model: apply an operator (ablation or masked fine-tuning) to a localisation,
    then print forget / retain / neighbour accuracy next to the original (and the oracle)."""
    from ..edit import OPERATORS
    from ..errors import WorkbenchInputError
    from ..registry import config_from_dict, parse_options
    from ..tasks.declared import LEGEND

    if list_:
        return list_registry(OPERATORS)
    if not operator:
        raise WorkbenchInputError(f"--operator is required; expected one of: {', '.join(OPERATORS.names())}")
    if localisation and method:
        raise WorkbenchInputError("give --localisation PATH or --method NAME, not both")
    options = parse_options(option)
    config_from_dict(OPERATORS.get(operator).Config, options)
    target = output_dir(out, "edit", "edit.json", force) if out else None  # refused before any model loads
    if export:
        output_dir(export, "HF checkpoint", "config.json", force, option="--export")
    loc = None
    if localisation:
        from ..localise import Localisation
        loc = Localisation.load(localisation)
    pipe, loaded, forget_task = model_and_task(model, task)
    if method:
        res = pipe.localise(loaded, forget_task, method, parse_options(loc_option))
        loc = res.localisation
        typer.echo(f"localisation {method}: {res.path}")
    res = pipe.edit(loaded, forget_task, operator, options, localisation=loc, fresh=fresh)
    edit = res.edit
    if edit.provenance.get("stopped"):
        typer.echo(f"stopped early: {edit.provenance['stopped']}")
    rows = pipe.accuracy_table(loaded, forget_task, edit, max_facts=max_facts)
    if not loaded.oracle_spec:
        typer.echo("(no oracle for this model)")
    took = "from the cache: --fresh recomputes" if res.reused else f"{edit.provenance['seconds']:.1f} s"
    typer.echo(f"\n{operator}: {edit.changed_params} weights changed, {len(edit.interventions)} hook interventions "
               f"({took}) -> {res.path}")
    typer.echo(table(rows, ["model", "forget", "retain", "neighbour", "forget_in_sample", "retain_in_sample"]))
    typer.echo(LEGEND)
    if out:
        typer.echo(f"edit saved to {edit.save(target)}")
    if export:
        typer.echo(f"HF checkpoint exported to {edit.export(loaded, export)}")
