"""Ablation operators: hook-level (exportable where weights can express them) or weight edits.

- `ablate`: zero / mean (over retain prompts) / resample ablation of the top unit sites of a
  localisation (heads, MLP neurons, component outputs, experts); weight localisations zero
  their top weights. `positions=after_first` leaves the first position (BOS) as it is.
- `directional`: remove r = mean h(forget) − mean h(retain) (`hook_resid_post` of a layer,
  last prompt position) from every residual write (hook form) or from the weights that write
  to the residual (`weight_form=true`: embedding, W_O, W_out orthogonalised).
- `remove-experts`: mask the top experts' router logits (-inf) in their layers.
- `sae-clamp`: SAE conditional negative clamp of the top-N selected features (sae-lens SAE).

`unit_ablation` and `zeroed_weights` are the engine: the faithfulness checks build their
ablations with them too.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from ..errors import WorkbenchInputError
from ..hooks import hook_session
from ..models.arch import resolve, table_for
from ..models.readouts import activation_point, mean_activations
from ..registry import check_positive, check_range
from ..sites import ExpertSite, HookSite, RouterSite, Site, SiteKind, WeightSite
from ..tasks.prompts import build_prompts, eval_examples, same_length_batches
from .edit import Edit
from .interventions import ExpertOutput, Intervention, MaskExperts, ProjectOut, Replace, Resample, SAEClamp
from .registry import UNIT_KINDS, Operator, budget, register


@dataclass(frozen=True)
class AblateConfig:
    mode: Literal["zero", "mean", "resample"] = "mean"
    k: int | None = None
    fraction: float | None = None  # default 0.05 of the sites (weights: of the scored scalars)
    bank: int = 64  # resample: retain activations kept per site
    max_facts: int = 200
    positions: Literal["all", "after_first"] = "all"  # after_first: the BOS position is left alone
    seed: int = 0

    def check(self):
        check_positive(self, "bank", "max_facts", "k")
        check_range(self, "fraction", 0, 1, low_open=True)


def zeroed_weights(model, masks: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """New values of the masked parameters: the masked scalars set to zero."""
    return {n: torch.where(m, torch.zeros_like(model.get_parameter(n)), model.get_parameter(n)).detach()
            for n, m in masks.items() if m.any()}


def ablation_points(model, sites: list[Site]) -> dict[tuple, list[int]]:
    """{(module, io): activation columns} of unit sites; [-1] = every column (a component)."""
    groups: dict[tuple, list[int]] = {}
    for s in sites:
        module, io, act = activation_point(s, model)
        cols = list(range(act[0].start, act[0].stop)) if act else [-1]
        groups.setdefault((module, io), []).extend(cols)
    return groups


def unit_ablation(loaded, task, sites: list[Site], mode: str = "mean", *, means: dict | None = None,
                  bank: int = 64, max_facts: int = 200, positions: str = "all", seed: int = 0) -> list[Intervention]:
    """Interventions that zero, mean-ablate (retain means, `means` if given) or resample the
    activations of unit sites (heads, neurons, component outputs)."""
    groups = ablation_points(loaded.model, sites)
    if mode == "mean" and means is None:
        means = mean_activations(loaded, task, list(groups), max_facts)
    banks = _activation_bank(loaded, task, list(groups), bank, max_facts, seed) if mode == "resample" else None
    extra = {} if positions == "all" else {"positions": positions}
    ivs: list[Intervention] = []
    for (module, io), cols in groups.items():
        width = (means or banks)[(module, io)].shape[-1] if (means or banks) else _width(loaded, module, io)
        cols = list(range(width)) if -1 in cols else sorted(set(cols))
        if mode == "resample":
            ivs.append(Resample(module, io, cols, banks[(module, io)][:, cols], seed=seed, extra=extra))
            continue
        value = torch.zeros(len(cols)) if mode == "zero" else means[(module, io)][cols]
        ivs.append(Replace(module, io, cols, value, seed=seed, extra=extra))
    return ivs


@register
class Ablate(Operator):
    name = "ablate"
    summary = "zero / mean / resample ablation of the top sites (weights: zeroed)"
    Config = AblateConfig
    accepts = UNIT_KINDS

    def apply(self, loaded, loc, task, cfg: AblateConfig, progress):
        if loc.kind == SiteKind.WEIGHT:
            return Edit(self.name, zeroed_weights(loaded.model, loc.weight_mask(**budget(cfg.k, cfg.fraction))))
        sites = loc.top(**budget(cfg.k, cfg.fraction))
        experts = [s for s in sites if isinstance(s, ExpertSite)]
        if experts and len(experts) == len(sites):
            return _ablate_experts(loaded, task, experts, cfg)
        bad = [s for s in sites if isinstance(s, (ExpertSite, RouterSite))]
        if bad:
            raise WorkbenchInputError(f"site {str(bad[0])!r}: ablate works on heads, neurons, component outputs or "
                                      f"experts (not a mix of experts and other sites, nor routers)")
        ivs = unit_ablation(loaded, task, sites, cfg.mode, bank=cfg.bank, max_facts=cfg.max_facts,
                            positions=cfg.positions, seed=cfg.seed)
        return Edit(self.name, {}, ivs, {"sites": [str(s) for s in sites]})


def _ablate_experts(loaded, task, experts: list[ExpertSite], cfg: AblateConfig) -> Edit:
    """Zero: the experts' down projections become 0 (a weight edit, exportable). Mean /
    resample: what each expert computes for the tokens routed to it is replaced by its mean
    output over retain tokens, or by a seeded random one of them (hook edit)."""
    model = loaded.model
    table = table_for(model)
    if table.experts is None:
        raise WorkbenchInputError(f"{table.name} models have no experts to ablate")
    if cfg.mode == "zero":
        weights: dict[str, torch.Tensor] = {}
        for s in experts:
            ps = resolve(WeightSite(s.layer, "W_out", s.expert), model).params[0]  # the expert's out projection
            w = weights.setdefault(ps.name, model.get_parameter(ps.name).detach().clone())
            w[ps.index] = 0
        return Edit("ablate", weights, [], {"sites": [str(s) for s in experts]})
    module = {s: table.experts.format(L=s.layer) for s in experts}
    rows: dict = {s: [] for s in experts}
    with torch.no_grad(), hook_session(model) as hs:
        for s in experts:
            hs.rewrite(module[s], lambda m, args, out, s=s: rows[s].append(table.expert_outputs(m, args, s.expert)[2])
                       or out)
        seqs = [loaded.tokenizer(ex.text)["input_ids"] for ex in eval_examples(task, cfg.max_facts)["retain"]]
        for idx in same_length_batches([len(s) for s in seqs], 64):  # no padding token reaches the experts
            model(input_ids=torch.tensor([seqs[i] for i in idx]))
    gen = torch.Generator().manual_seed(cfg.seed)
    ivs: list[Intervention] = []
    for s in experts:
        outs = torch.cat(rows[s]) if rows[s] else torch.zeros(0, model.config.hidden_size)
        if not len(outs):
            raise WorkbenchInputError(f"expert {str(s)!r} is never routed to on the retain text: no output to average")
        value = outs.mean(0) if cfg.mode == "mean" else outs[torch.randperm(len(outs), generator=gen)[:cfg.bank]]
        ivs.append(ExpertOutput(module[s], "output", [s.expert], value, site=str(s), seed=cfg.seed))
    return Edit("ablate", {}, ivs, {"sites": [str(s) for s in experts]})


def _width(loaded, module, io) -> int:
    store: dict = {}
    with torch.no_grad(), hook_session(loaded.model) as hs:
        hs.read(module, io, store, 0)
        loaded.model(input_ids=torch.tensor([[loaded.tokenizer.bos_token_id or 0]]))
    return store[0].shape[-1]


@torch.no_grad()
def _activation_bank(loaded, task, points, bank: int, max_facts: int, seed: int) -> dict:
    exs = eval_examples(task, max_facts)["retain"]
    gen = torch.Generator().manual_seed(seed)
    rows: dict = {p: [] for p in points}
    with hook_session(loaded.model) as hs:
        store: dict = {}
        for p in points:
            hs.read(p[0], p[1], store, p)
        for ex in exs[: max(1, bank)]:
            loaded.model(input_ids=torch.tensor([loaded.tokenizer(ex.prompt)["input_ids"]]))
            for p in points:
                acts = store[p][0, 1:]
                rows[p].append(acts[torch.randint(0, acts.shape[0], (1,), generator=gen)])
    return {p: torch.cat(v)[: bank] for p, v in rows.items()}


@dataclass(frozen=True)
class DirectionalConfig:
    layer: int | None = None  # None = the middle layer
    weight_form: bool = False
    max_facts: int = 200

    def check(self):
        check_positive(self, "max_facts")


@register
class Directional(Operator):
    name = "directional"
    summary = "project the forget-vs-retain direction out of every residual write (hook or weight form)"
    Config = DirectionalConfig
    needs_localisation = False

    def apply(self, loaded, loc, task, cfg: DirectionalConfig, progress):
        model, tok = loaded.model, loaded.tokenizer
        n_layers = model.config.num_hidden_layers
        layer = cfg.layer if cfg.layer is not None else n_layers // 2
        if not 0 <= layer < n_layers:
            raise WorkbenchInputError(f"option layer={layer}: out of range (model has {n_layers})")
        point = resolve(HookSite(layer, "hook_resid_post"), model)
        means = []
        for split in ("forget", "retain"):
            prompts = build_prompts(tok, task, split, max_facts=cfg.max_facts)
            total, n = 0, 0
            with torch.no_grad(), hook_session(model) as hs:
                store: dict = {}
                hs.read(point.module, point.io, store, 0)
                for p in prompts:
                    model(input_ids=torch.tensor([p.ids]))
                    total = total + store[0][0, -1].double()
                    n += 1
            means.append(total / max(n, 1))
        r = (means[0] - means[1]).float()
        writers = [("embed.W_E", None)] + [(w, L) for L in range(n_layers) for w in ("attn.W_O", "mlp.W_out")]
        modules = [resolve(WeightSite(L, name), model).params[0].name.removesuffix(".weight") for name, L in writers]
        ivs = [ProjectOut(m, "output", [], r.clone()) for m in modules]
        info = {"layer": layer, "direction_norm": float(r.norm())}
        if not cfg.weight_form:
            return Edit(self.name, {}, ivs, info)
        twin = Edit(self.name, {}, ivs).baked(model)  # the projection folded into the writers' weights
        weights = {f"{m}.weight": twin.get_parameter(f"{m}.weight").detach().clone() for m in modules}
        return Edit(self.name, weights, [], info)


@dataclass(frozen=True)
class RemoveExpertsConfig:
    k: int = 1

    def check(self):
        check_positive(self, "k")


def expert_removal(model, experts: list[ExpertSite]) -> list[Intervention]:
    """Router masks that take `experts` out of their routers' top-k."""
    by_layer: dict[int, list[int]] = {}
    for s in experts:
        by_layer.setdefault(s.layer, []).append(s.expert)
    ivs: list[Intervention] = []
    for layer, cols in by_layer.items():
        r = resolve(HookSite(layer, "mlp.gate.hook_out"), model)
        ivs.append(MaskExperts(r.module, r.io, sorted(cols), site=f"blocks.{layer}.mlp.router"))
    return ivs


@register
class RemoveExperts(Operator):
    name = "remove-experts"
    summary = "mask the top experts in their routers (router logits set to -inf)"
    Config = RemoveExpertsConfig
    accepts = frozenset({SiteKind.EXPERT})

    def apply(self, loaded, loc, task, cfg: RemoveExpertsConfig, progress):
        experts = [s for s in loc.top(k=len(loc.sites)) if isinstance(s, ExpertSite)][: cfg.k]
        return Edit(self.name, {}, expert_removal(loaded.model, experts), {"experts": [str(s) for s in experts]})


@dataclass(frozen=True)
class SAEClampConfig:
    k: int = 20  # top-N selected features
    c: float = 50.0  # clamp value: firing selected features are set to -c

    def check(self):
        check_positive(self, "k")


def sae_clamp(model, sae: str, hook: HookSite, features: list[int], c: float) -> Intervention:
    """The conditional negative clamp of `features` of the SAE at `sae` (a directory) on `hook`."""
    r = resolve(hook, model)
    return SAEClamp(r.module, r.io, sorted(features), site=str(hook), extra={"sae": sae, "c": c})


@register
class SAEClampOperator(Operator):
    name = "sae-clamp"
    summary = "SAE conditional negative clamp: selected features that fire are set to -c (error term kept)"
    Config = SAEClampConfig
    accepts = frozenset({SiteKind.SAE_FEATURE})

    def apply(self, loaded, loc, task, cfg: SAEClampConfig, progress):
        if "sae" not in loc.provenance:
            raise WorkbenchInputError("operator 'sae-clamp' needs an SAE feature localisation (--method sae)")
        sites = loc.top(k=cfg.k)
        iv = sae_clamp(loaded.model, loc.provenance["sae"], sites[0].hook, [s.feature for s in sites], cfg.c)
        return Edit(self.name, {}, [iv], {"features": [str(s) for s in sites]})
