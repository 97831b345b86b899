"""Masked fine-tuning operators: one trainer (`trainer.unlearn`), one loss object each.

`ga`, `graddiff`, `npo`, `simnpo`, `mu`, `rmu` train only the parameters the localisation
selects (its top `k` / `fraction`; no localisation = the whole model, RMU: the W_out of layers
L−2..L); `uoe` trains the top expert and its router with NPO plus the router anchor; `needle`
adds noise to the top concept vectors and then ascends the forget loss on them only.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import WorkbenchInputError
from ..models.arch import resolve
from ..registry import check_positive, check_range
from ..sites import ExpertSite, NeuronSite, RouterSite, SiteKind, WeightSite
from .edit import Edit
from .losses import LOSSES, GAConfig, NPOConfig
from .registry import UNIT_KINDS, Operator, budget, register
from .trainer import RouterAnchor, unlearn


class FineTune(Operator):
    """Masked fine-tuning with the loss its config names (`Config.kind`)."""
    needs_localisation = False
    accepts = UNIT_KINDS

    def plan(self, loaded, loc, cfg) -> tuple[dict[str, torch.Tensor] | None, RouterAnchor | None]:
        """(masks of the parameters that may move, the router anchor if any)."""
        if loc is None:
            return None, None
        return loc.mask(loaded.model, **budget(cfg.k, cfg.fraction)), None

    def apply(self, loaded, loc, task, cfg, progress):
        masks, anchor = self.plan(loaded, loc, cfg)
        result = unlearn(loaded, task, cfg, masks, progress, anchor=anchor)
        changed = {n: w for n, w in result.weights.items() if not torch.equal(w, loaded.model.get_parameter(n))}
        return Edit(self.name, changed, [], {
            "history": result.history, "evals": result.evals, "stopped": result.stopped,
            "steps_done": result.steps_done, "masked": masks is not None,
            "anchor": [anchor.layer, anchor.expert] if anchor else None,
            "trainable_scalars": sum(int(m.sum()) for m in masks.values()) if masks else
            sum(p.numel() for p in loaded.model.parameters())})


def _finetune_operator(loss: str, summary: str) -> type:
    cls = type(f"FineTune_{loss}", (FineTune,), {"name": loss, "Config": LOSSES.get(loss).Config,
                                                 "summary": f"masked fine-tuning, {summary}", "__module__": __name__})
    return register(cls)


for _name, _summary in [
    ("ga", "gradient ascent on the forget set"),
    ("graddiff", "gradient difference: −CE_f + λ·retain term"),
    ("npo", "negative preference optimisation (reference = the original model)"),
    ("simnpo", "SimNPO: length-normalised NPO without a reference"),
    ("mu", "mechanistic-unlearning loss −log(1 − p(answer)), floored"),
]:
    _finetune_operator(_name, _summary)


@register
class RMUOperator(FineTune):
    name = "rmu"
    Config = LOSSES.get("rmu").Config
    summary = "RMU: steer layer-L activations on forget text to c·u, keep retain activations (W_out of L−2..L)"

    def plan(self, loaded, loc, cfg):
        if loc is not None:
            return super().plan(loaded, loc, cfg)
        model = loaded.model
        layer = cfg.layer if cfg.layer is not None else model.config.num_hidden_layers // 2
        out = {}
        for L in range(max(0, layer - 2), layer + 1):
            ps = resolve(WeightSite(L, "mlp.W_out"), model).params[0]
            out[ps.name] = torch.ones_like(model.get_parameter(ps.name), dtype=torch.bool)
        return out, None


@dataclass(frozen=True)
class UOEConfig(NPOConfig):
    beta: float = 0.001  # NPO β of the paper
    lr: float = 1e-4
    router_anchor: float = 1.0
    experts: int = 1  # M: how many top experts to unlearn (the paper's best is 1)

    def check(self):
        super().check()
        check_positive(self, "experts")


@register
class UOE(FineTune):
    name = "uoe"
    summary = "UOE: NPO on the top-affinity expert and its router only, plus the router anchor term"
    Config = UOEConfig
    needs_localisation = True
    accepts = frozenset({SiteKind.EXPERT})

    def plan(self, loaded, loc, cfg: UOEConfig):
        experts = [s for s in loc.top(k=len(loc.sites)) if isinstance(s, ExpertSite)][: cfg.experts]
        out: dict[str, torch.Tensor] = {}
        for site in [*experts, *{RouterSite(s.layer) for s in experts}]:
            for ps in resolve(site, loaded.model).params:
                out.setdefault(ps.name, torch.zeros_like(loaded.model.get_parameter(ps.name), dtype=torch.bool))
                out[ps.name][ps.index] = True
        return out, RouterAnchor(experts[0].layer, experts[0].expert, cfg.router_anchor)


@dataclass(frozen=True)
class NeedleConfig:
    k: int = 10
    sigma: float = 0.1
    steps: int = 20
    lr: float = 0.2
    batch_size: int = 32
    seed: int = 0

    def check(self):
        check_positive(self, "k", "steps", "batch_size")
        check_range(self, "sigma", 0)
        check_range(self, "lr", 0, low_open=True)


@register
class Needle(Operator):
    name = "needle"
    summary = "concept-vector Needle: noise on the top value vectors, then gradient ascent on them only"
    Config = NeedleConfig
    accepts = frozenset({SiteKind.NEURON})

    def apply(self, loaded, loc, task, cfg: NeedleConfig, progress):
        model = loaded.model
        vectors = [s for s in loc.top(k=len(loc.sites)) if isinstance(s, NeuronSite)][: cfg.k]
        if not vectors:
            raise WorkbenchInputError("operator 'needle' needs a localisation of MLP neurons (e.g. method 'concept')")
        masks: dict[str, torch.Tensor] = {}
        gen = torch.Generator().manual_seed(cfg.seed)
        saved = {}
        for s in vectors:
            ps = resolve(s, model).params[0]  # the value vector (down-projection column)
            masks.setdefault(ps.name, torch.zeros_like(model.get_parameter(ps.name), dtype=torch.bool))[ps.index] = True
            saved.setdefault(ps.name, model.get_parameter(ps.name).detach().clone())
        with torch.no_grad():
            for s in vectors:
                view = resolve(s, model).params[0].view(model)
                view.add_(torch.randn(view.shape, generator=gen) * cfg.sigma)
        try:
            ga = GAConfig(steps=cfg.steps, lr=cfg.lr, batch_size=cfg.batch_size, weight_decay=0.0, seed=cfg.seed)
            result = unlearn(loaded, task, ga, masks, progress)
        finally:
            with torch.no_grad():
                for n, t in saved.items():
                    model.get_parameter(n).copy_(t)
        return Edit(self.name, result.weights, [], {"vectors": [str(s) for s in vectors],
                                                   "history": result.history, "stopped": result.stopped})
