"""`workbench probe`: the original, an edit and the oracle side by side."""
from __future__ import annotations

from typing import Optional

import typer

from .common import command, model_and_task, output_dir, output_file


@command
def probe_cmd(
    model: str = typer.Option("testbed:dense", help="model spec"),
    task: str = typer.Option("default", help="default | real:TOPIC"),
    edit: Optional[str] = typer.Option(None, help="a saved edit directory (from `workbench edit --out`)"),
    oracle: str = typer.Option("auto", help="auto (the model's oracle twin, if it has one) | none | a model spec"),
    probes: Optional[str] = typer.Option(None, help="comma-separated probe families (default: all; see --list)"),
    option: Optional[list[str]] = typer.Option(None, "--option", "-o",
                                               help="probe option key=value or family.key=value (see --list)"),
    json_out: Optional[str] = typer.Option(None, "--json", help="write the full result (JSON) here"),
    figures: Optional[str] = typer.Option("probe-figures", help="write plotly figures (HTML) to this directory "
                                                                "(new, empty, or holding probe figures)"),
    noise_floor: bool = typer.Option(True, help="also probe a second oracle (the oracle twin of the next training "
                                                "seed, trained the first time): its reference metrics against the "
                                                "oracle are the noise floor"),
    fresh: bool = typer.Option(False, help="recompute even if the cache holds the measurements"),
    force: bool = typer.Option(False, help="apply --edit even if it was made on other weights than this model's, "
                                           "and write --json / --figures over files the workbench did not write"),
    list_: bool = typer.Option(False, "--list", help="list the probe families and the options"),
):
    """Probe the original, the edited and the oracle model side by side: behaviour, TOFU and
    MUSE metrics, membership inference, parametric traces, latent probes, prompt-level and
    relearning attacks. Prints the table; writes the JSON result and the figures."""
    import dataclasses

    from probes import FAMILIES, ProbeConfig
    from probes.base import SharedProbeOptions
    from probes.figures import is_figures_dir, write_figures
    from probes.result import ProbeResult

    from ..registry import parse_options

    if list_:
        typer.echo("shared options: " + ", ".join(f"{f.name}={f.default!r}"
                                                  for f in dataclasses.fields(SharedProbeOptions)))
        for name in FAMILIES.names():
            cls = FAMILIES.get(name)
            opts = ", ".join(f"{name}.{f.name}={f.default!r}" for f in dataclasses.fields(cls.Config))
            typer.echo(f"{name:10s} {cls.summary}" + (f"\n{'':10s} options: {opts}" if opts else ""))
        return
    options = parse_options(option)
    if probes:
        options["families"] = probes
    config = ProbeConfig.from_options(options)
    # the outputs are checked before anything is computed: nothing the workbench did not write is replaced
    json_path = output_file(json_out, "probe result", ProbeResult.is_result_file, force, "--json") if json_out else None
    if figures:
        output_dir(figures, "probe figures", is_figures_dir, force, "--figures",
                   hint="--force writes the figures into it (nothing else there is deleted)")
    edit_obj = None
    if edit:
        from ..edit import Edit
        edit_obj = Edit.load(edit)
    pipe, loaded, forget_task = model_and_task(model, task)
    if edit_obj is not None:
        edit_obj.check_model(loaded.model, force)
        edit_obj.check_fits(loaded.model)  # before any probing (and again whenever it is put on)
    typer.echo(forget_task.summary())
    result = pipe.probe(loaded, forget_task, edit=edit_obj, config=config,
                        oracle=None if oracle == "none" else oracle, use_cache=not fresh,
                        noise_floor=noise_floor and oracle != "none")
    typer.echo("")
    typer.echo(result.table())
    if json_out:
        typer.echo(f"\nresult written to {result.save(json_path)}")
    if figures:
        paths = write_figures(result, figures)
        typer.echo("figures: " + ", ".join(str(p) for p in paths))
