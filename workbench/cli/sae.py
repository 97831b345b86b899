"""`workbench sae train|cards`: SAEs trained with sae-lens, and feature cards."""
from __future__ import annotations

from typing import Optional

import typer

from .common import command, model_and_task, table, threads

sae_app = typer.Typer(no_args_is_help=True, help="Train SAEs (sae-lens) and show feature cards.")


@sae_app.command("train")
@command
def sae_train(
    model: str = typer.Option("testbed:dense", help="model spec"),
    layer: Optional[str] = typer.Option(None, help="comma-separated layers (resid_post); default: an early-middle layer"),
    option: Optional[list[str]] = typer.Option(None, "--option", "-o", help="SAE option key=value (see --list)"),
    list_: bool = typer.Option(False, "--list", help="list the SAE options"),
):
    """Train SAEs with sae-lens on a model's residual stream (cached); print L0, explained
    variance, dead-feature fraction and training time per layer."""
    import dataclasses

    from ..errors import WorkbenchInputError
    from ..registry import config_from_dict, parse_options
    from ..sae import SAEConfig, hook_name, train_sae

    if list_:
        typer.echo("options: " + ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(SAEConfig)))
        return
    options = parse_options(option)
    config_from_dict(SAEConfig, options)
    try:
        layers = [int(x) for x in layer.split(",")] if layer else [None]
    except ValueError:
        raise WorkbenchInputError(f"--layer {layer!r}: expected comma-separated layer numbers") from None
    threads()
    from ..models import load

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
@command
def sae_cards(localisation: str = typer.Argument(..., help="a saved SAE feature localisation (--method sae)"),
              n: int = typer.Option(10, help="how many top features"),
              model: Optional[str] = typer.Option(None, help="model spec (default: the localisation's)"),
              task: str = typer.Option("default", help="default | real:TOPIC")):
    """Feature cards of the top selected features: firing rate, top-activating contexts in the
    forget text, top vocabulary tokens of the decoder direction."""
    from ..errors import WorkbenchInputError
    from ..localise import Localisation
    from ..localise.sae_features import feature_cards
    from ..sae import cached_sae
    from ..sites import SiteKind

    loc = Localisation.load(localisation)
    if loc.kinds != {SiteKind.SAE_FEATURE}:
        raise WorkbenchInputError(f"localisation {localisation!r} holds {loc.kind} sites: expected SAE features "
                                  f"(--method sae)")
    _, loaded, forget_task = model_and_task(model or loc.provenance["model"], task)
    texts = [e.text for e in forget_task.examples("forget") if e.kind != "mcq"]
    top = loc.top(k=n)
    for card in feature_cards(loaded, cached_sae(loc.provenance["sae"]), top[0].layer, [s.feature for s in top], texts):
        typer.echo(f"\nfeature {card['feature']}  firing rate {card['firing_rate']:.3f}")
        typer.echo("  tokens:   " + " ".join(card["top_tokens"]))
        for ctx in card["contexts"]:
            typer.echo(f"  {ctx['activation']:7.2f}  {ctx['text']}")
