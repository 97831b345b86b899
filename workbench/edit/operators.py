"""Operators: `apply(loaded, localisation, task, options) -> Edit`, registered by name.

Ablations (hook-level, exportable where weights can express them):
- `ablate`: zero / mean (over retain prompts) / resample ablation of the top unit sites of a
  localisation (heads, MLP neurons, MLP outputs, experts); weight localisations zero their top
  weights.
- `directional`: remove r = mean h(forget) − mean h(retain) (`hook_resid_post` of a layer,
  last prompt position) from every residual write (hook form) or from the weights that write
  to the residual (`weight_form=true`: embedding, W_O, W_out orthogonalised).
- `remove-experts`: mask the top experts' router logits (-inf) in their layers.
- `sae-clamp`: SAE conditional negative clamp of the top-N selected features (sae-lens SAE).
- `needle`: concept-vector Needle: noise N(0, σ²) on the top value vectors, then gradient
  ascent on the forget text training only those vectors (weight decay 0).
- `lunar`: refit one W_out in closed form (ridge) so forget prompts move toward the state of
  prompts about unknown people (LUNAR's refusal direction, for a world without refusals).
Masked fine-tuning (one trainer, loss objects; mask from the localisation or none):
`ga`, `graddiff`, `npo`, `simnpo`, `rmu`, `mu`; `uoe` (top expert + its router, NPO, router anchor).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Literal

import torch

from ..hooks import hook_session
from ..localise.data import build_prompts
from ..localise.faithfulness import eval_examples, mean_activations
from ..models.arch import resolve
from ..registry import Registry, config_from_dict
from ..sites import ExpertSite, HookSite, NeuronSite, RouterSite, WeightSite
from .edit import Edit, Intervention
from .losses import LossConfig
from .trainer import TrainConfig, unlearn

OPERATORS: Registry = Registry("operator")
UNIT_KINDS = ("head", "neuron", "mlp", "node", "weight", "expert")  # kinds with parameters to mask or ablate


class Operator:
    name: str
    summary: str
    Config: type
    needs_localisation: bool = True
    accepts: tuple[str, ...] = ()  # the localisation kinds it uses (empty: it uses none)

    def apply(self, loaded, localisation, task, config, progress: bool) -> Edit:
        raise NotImplementedError


def register(cls):
    OPERATORS.register(cls.name)(cls)
    return cls


def apply_operator(loaded, localisation, task, name: str, options: dict[str, Any] | None = None,
                   progress: bool = True) -> Edit:
    cls = OPERATORS.get(name)
    config = config_from_dict(cls.Config, options)
    if cls.needs_localisation and localisation is None:
        raise ValueError(f"operator {name!r} needs a localisation (--localisation PATH or --method NAME)")
    start = time.perf_counter()
    edit = cls().apply(loaded, localisation, task, config, progress)
    edit.provenance.update({
        "operator": name, "config": dataclasses.asdict(config), "model": loaded.spec,
        "task": task.name, "task_hash": task.content_hash, "seconds": round(time.perf_counter() - start, 3),
        "localisation": None if localisation is None else {
            k: localisation.provenance.get(k) for k in ("localiser", "config", "model_hash", "task_hash")},
    })
    return edit


CODE_VERSION = 1  # bump when an operator's edit changes for the same inputs


def apply_operator_cached(loaded, localisation, task, name: str, options: dict[str, Any] | None = None,
                          progress: bool = True, localisation_id: str | None = None,
                          fresh: bool = False) -> tuple[Edit, Any, bool]:
    """`apply_operator`, stored in the cache (edit.safetensors + edit.json) under a content hash
    of (model weights, task, localisation identity, operator, config, code version).
    `localisation_id` names the localisation (e.g. its cache directory name); it defaults to
    a hash of its scores. Returns (edit, path, reused)."""
    import shutil

    from .. import cache
    from ..localise.localisation import model_fingerprint

    cls = OPERATORS.get(name)
    config = config_from_dict(cls.Config, options)
    if localisation is not None and localisation_id is None:
        localisation_id = cache.content_hash({"sites": [str(s) for s in localisation.sites],
                                              "scores": localisation.scores.tolist(),
                                              "provenance": localisation.provenance.get("config")})
    key = cache.content_hash({"model": model_fingerprint(loaded.model), "task": task.content_hash,
                              "localisation": localisation_id, "operator": name,
                              "config": dataclasses.asdict(config), "code": CODE_VERSION})
    path = cache.entry_path("edits", name, key)
    if fresh and cache.is_complete(path):
        shutil.rmtree(path)
    made: list[Edit] = []

    def build(tmp):
        edit = apply_operator(loaded, localisation, task, name, options, progress)
        edit.save(tmp)
        made.append(edit)
    path, built = cache.get_or_build(path, build)
    return (made[0] if made else Edit.load(path)), path, not built


DEFAULT_FRACTION = 0.05


def budget(k: int | None, fraction: float | None) -> dict:
    """The selection budget every operator uses: k sites, else a fraction (default 0.05)."""
    if k is not None and fraction is not None:
        raise ValueError(f"options k={k} and fraction={fraction}: give one of them, not both")
    if k is not None:
        return {"k": k, "fraction": None}
    return {"k": None, "fraction": DEFAULT_FRACTION if fraction is None else fraction}


# -- ablations -----------------------------------------------------------------------------
@dataclass(frozen=True)
class AblateConfig:
    mode: Literal["zero", "mean", "resample"] = "mean"
    k: int | None = None
    fraction: float | None = None  # default 0.05 of the sites (weights: of the scored scalars)
    bank: int = 64  # resample: retain activations kept per site
    max_facts: int = 200
    seed: int = 0


@register
class Ablate(Operator):
    name = "ablate"
    summary = "zero / mean / resample ablation of the top sites (weights: zeroed)"
    Config = AblateConfig
    accepts = UNIT_KINDS

    def apply(self, loaded, loc, task, cfg: AblateConfig, progress):
        model = loaded.model
        if loc.kind == "weight":
            masks = loc.weight_mask(**budget(cfg.k, cfg.fraction))
            weights = {n: torch.where(m, torch.zeros_like(model.get_parameter(n)), model.get_parameter(n)).detach()
                       for n, m in masks.items() if m.any()}
            return Edit(self.name, {}, weights, [])
        sites = loc.top(**budget(cfg.k, cfg.fraction))
        experts = [s for s in sites if isinstance(s, ExpertSite)]
        if experts and len(experts) == len(sites):
            return _ablate_experts(loaded, task, experts, cfg)
        bad = [s for s in sites if isinstance(s, (ExpertSite, RouterSite))]
        if bad:
            raise ValueError(f"site {str(bad[0])!r}: ablate works on heads, neurons, MLP outputs or experts "
                             f"(not a mix of experts and other sites, nor routers)")
        groups: dict[tuple, list[int]] = {}
        for s in sites:
            r = resolve(s, model)
            cols = (list(range(r.act_index[0].start, r.act_index[0].stop)) if r.act_index else None)
            groups.setdefault((r.module, r.io), []).extend(cols if cols is not None else [-1])
        means = mean_activations(loaded, task, sites, cfg.max_facts) if cfg.mode == "mean" else None
        bank = _activation_bank(loaded, task, list(groups), cfg) if cfg.mode == "resample" else None
        ivs = []
        for (module, io), cols in groups.items():
            width = (means or bank)[(module, io)].shape[-1] if (means or bank) else _width(loaded, module, io)
            cols = list(range(width)) if -1 in cols else sorted(set(cols))
            if cfg.mode == "zero":
                value = torch.zeros(len(cols))
            elif cfg.mode == "mean":
                value = means[(module, io)][cols]
            else:
                value = bank[(module, io)][:, cols]
            ivs.append(Intervention(module, io, "replace" if cfg.mode != "resample" else "resample", cols, value,
                                    seed=cfg.seed))
        return Edit(self.name, {}, {}, ivs, {"sites": [str(s) for s in sites]})


def _ablate_experts(loaded, task, experts: list, cfg: AblateConfig) -> Edit:
    """Zero: the experts' down projections become 0 (a weight edit, exportable). Mean /
    resample: what each expert computes for the tokens routed to it is replaced by its mean
    output over retain tokens, or by a seeded random one of them (hook edit)."""
    from .edit import expert_outputs

    model = loaded.model
    if cfg.mode == "zero":
        weights: dict[str, torch.Tensor] = {}
        for s in experts:
            ps = [p for p in resolve(s, model).params if p.name.endswith("down_proj")][0]
            w = weights.setdefault(ps.name, model.get_parameter(ps.name).detach().clone())
            w[ps.index] = 0
        return Edit("ablate", {}, weights, [], {"sites": [str(s) for s in experts]})
    module = {s: f"model.layers.{s.layer}.mlp.experts" for s in experts}
    rows: dict = {s: [] for s in experts}
    with torch.no_grad(), hook_session(model) as hs:
        for s in experts:
            hs.rewrite(module[s], lambda m, args, out, s=s: rows[s].append(expert_outputs(m, args, s.expert)[2]) or out)
        by_len: dict[int, list] = {}  # equal lengths: no padding token reaches the experts
        for ex in eval_examples(task, cfg.max_facts)["retain"]:
            ids = loaded.tokenizer(ex.text)["input_ids"]
            by_len.setdefault(len(ids), []).append(ids)
        for _, group in sorted(by_len.items()):
            for i in range(0, len(group), 64):
                model(input_ids=torch.tensor(group[i:i + 64]))
    gen = torch.Generator().manual_seed(cfg.seed)
    ivs = []
    for s in experts:
        outs = torch.cat(rows[s]) if rows[s] else torch.zeros(0, model.config.hidden_size)
        if not len(outs):
            raise ValueError(f"expert {str(s)!r} is never routed to on the retain text: no output to average")
        value = outs.mean(0) if cfg.mode == "mean" else outs[torch.randperm(len(outs), generator=gen)[:cfg.bank]]
        ivs.append(Intervention(module[s], "output", "expert_output", [s.expert], value, site=str(s), seed=cfg.seed))
    return Edit("ablate", {}, {}, ivs, {"sites": [str(s) for s in experts]})


def _width(loaded, module, io) -> int:
    store: dict = {}
    with torch.no_grad(), hook_session(loaded.model) as hs:
        hs.read(module, io, store, 0)
        loaded.model(input_ids=torch.tensor([[loaded.tokenizer.bos_token_id or 0]]))
    return store[0].shape[-1]


@torch.no_grad()
def _activation_bank(loaded, task, points, cfg) -> dict:
    exs = eval_examples(task, cfg.max_facts)["retain"]
    gen = torch.Generator().manual_seed(cfg.seed)
    rows: dict = {p: [] for p in points}
    with hook_session(loaded.model) as hs:
        store: dict = {}
        for p in points:
            hs.read(p[0], p[1], store, p)
        for ex in exs[: max(1, cfg.bank)]:
            loaded.model(input_ids=torch.tensor([loaded.tokenizer(ex.prompt)["input_ids"]]))
            for p in points:
                acts = store[p][0, 1:]
                rows[p].append(acts[torch.randint(0, acts.shape[0], (1,), generator=gen)])
    return {p: torch.cat(v)[: cfg.bank] for p, v in rows.items()}


@dataclass(frozen=True)
class DirectionalConfig:
    layer: int | None = None  # None = the middle layer
    weight_form: bool = False
    max_facts: int = 200


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
            raise ValueError(f"option layer={layer}: out of range (model has {n_layers})")
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
        modules = []
        for name, L in writers:
            site = WeightSite(L, name)
            path = resolve(site, model).params[0].name.removesuffix(".weight")
            modules.append(path)
        ivs = [Intervention(m, "output", "project_out", [], r.clone()) for m in modules]
        if not cfg.weight_form:
            return Edit(self.name, {}, {}, ivs, {"layer": layer, "direction_norm": float(r.norm())})
        import copy

        from .bake import bake
        twin = copy.deepcopy(model)
        bake(twin, ivs)
        weights = {f"{m}.weight": twin.get_parameter(f"{m}.weight").detach().clone() for m in modules}
        return Edit(self.name, {}, weights, [], {"layer": layer, "direction_norm": float(r.norm())})


@dataclass(frozen=True)
class RemoveExpertsConfig:
    k: int = 1


@register
class RemoveExperts(Operator):
    name = "remove-experts"
    summary = "mask the top experts in their routers (router logits set to -inf)"
    Config = RemoveExpertsConfig
    accepts = ("expert",)

    def apply(self, loaded, loc, task, cfg: RemoveExpertsConfig, progress):
        experts = [s for s in loc.top(k=len(loc.sites)) if isinstance(s, ExpertSite)][: cfg.k]
        if not experts:
            raise ValueError("operator 'remove-experts' needs a localisation of expert sites (blocks.L.mlp.expert.E)")
        by_layer: dict[int, list[int]] = {}
        for s in experts:
            by_layer.setdefault(s.layer, []).append(s.expert)
        ivs = []
        for layer, cols in by_layer.items():
            r = resolve(HookSite(layer, "mlp.gate.hook_out"), loaded.model)
            ivs.append(Intervention(r.module, r.io, "mask_experts", sorted(cols), site=f"blocks.{layer}.mlp.router"))
        return Edit(self.name, {}, {}, ivs, {"experts": [str(s) for s in experts]})


@dataclass(frozen=True)
class SAEClampConfig:
    k: int = 20  # top-N selected features
    c: float = 50.0  # clamp value: firing selected features are set to -c


@register
class SAEClamp(Operator):
    name = "sae-clamp"
    summary = "SAE conditional negative clamp: selected features that fire are set to -c (error term kept)"
    Config = SAEClampConfig
    accepts = ("feature",)

    def apply(self, loaded, loc, task, cfg: SAEClampConfig, progress):
        if loc.kind != "feature" or "sae" not in loc.provenance:
            raise ValueError("operator 'sae-clamp' needs an SAE feature localisation (--method sae)")
        sites = loc.top(k=cfg.k)
        r = resolve(sites[0].hook, loaded.model)
        iv = Intervention(r.module, r.io, "sae_clamp", sorted(s.feature for s in sites), site=str(sites[0].hook),
                          extra={"sae": loc.provenance["sae"], "c": cfg.c})
        return Edit(self.name, {}, {}, [iv], {"features": [str(s) for s in sites]})


# -- masked fine-tuning ------------------------------------------------------------------------
@dataclass(frozen=True)
class FineTuneConfig:
    # which parameters may move (from the localisation; none = the whole model)
    k: int | None = None
    fraction: float | None = None  # of the localisation's sites / scored weights (default 0.05)
    # the loss (see losses.py)
    forget_weight: float = 1.0
    retain_weight: float = 1.0
    retain: Literal["nll", "kl"] = "nll"
    reduction: Literal["sum", "mean"] = "sum"
    beta: float = 0.1
    simnpo_beta: float = 2.5
    simnpo_delta: float = 0.0
    rmu_layer: int | None = None
    rmu_c: float | None = None  # None = rmu_scale x the mean residual norm at layer L (small models)
    rmu_scale: float = 4.0
    rmu_alpha: float = 100.0
    mu_floor: float = -5.0
    router_anchor: float = 0.0
    # the trainer
    steps: int = 60
    lr: float = 1e-3
    batch_size: int = 32
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    eval_every: int = 0
    collapse_retain: float | None = None
    retain_similar: float = 0.0
    seed: int = 0


def _split(cfg, loss_name: str) -> tuple[LossConfig, TrainConfig]:
    d = dataclasses.asdict(cfg)
    lc = {f.name: d[f.name] for f in dataclasses.fields(LossConfig) if f.name in d}
    tc = {f.name: d[f.name] for f in dataclasses.fields(TrainConfig) if f.name in d}
    return LossConfig(loss=loss_name, **lc), TrainConfig(**tc)


def finetune_masks(loaded, loc, cfg) -> dict[str, torch.Tensor] | None:
    if loc is None:
        return None
    return loc.mask(loaded.model, **budget(cfg.k, cfg.fraction))


class FineTune(Operator):
    Config = FineTuneConfig
    needs_localisation = False
    accepts = UNIT_KINDS
    loss_name: str

    def masks(self, loaded, loc, cfg):
        return finetune_masks(loaded, loc, cfg)

    def apply(self, loaded, loc, task, cfg, progress):
        loss_cfg, train_cfg = _split(cfg, self.loss_name)
        masks = self.masks(loaded, loc, cfg)
        anchor = getattr(self, "anchor", None)
        result = unlearn(loaded, task, loss_cfg, train_cfg, masks, progress, anchor=anchor)
        changed = {n: w for n, w in result.weights.items() if not torch.equal(w, loaded.model.get_parameter(n))}
        return Edit(self.name, {}, changed, [], {
            "history": result.history, "evals": result.evals, "stopped": result.stopped,
            "steps_done": result.steps_done, "masked": masks is not None, "anchor": list(anchor) if anchor else None,
            "trainable_scalars": sum(int(m.sum()) for m in masks.values()) if masks else
            sum(p.numel() for p in loaded.model.parameters())})


def _finetune_operator(loss_name: str, summary: str) -> type:
    cls = type(f"FineTune_{loss_name}", (FineTune,), {"name": loss_name, "loss_name": loss_name, "summary": summary})
    return register(cls)


for _name, _summary in [
    ("ga", "gradient ascent on the forget set"),
    ("graddiff", "gradient difference: −CE_f + λ·retain term"),
    ("npo", "negative preference optimisation (reference = the original model)"),
    ("simnpo", "SimNPO: length-normalised NPO without a reference"),
    ("mu", "mechanistic-unlearning loss −log(1 − p(answer)), floored"),
]:
    _finetune_operator(_name, f"masked fine-tuning, {_summary}")


@register
class RMUOperator(FineTune):
    name = "rmu"
    loss_name = "rmu"
    summary = "RMU: steer layer-L activations on forget text to c·u, keep retain activations (W_out of L−2..L)"

    def masks(self, loaded, loc, cfg):
        if loc is not None:
            return finetune_masks(loaded, loc, cfg)
        model = loaded.model
        layer = cfg.rmu_layer if cfg.rmu_layer is not None else model.config.num_hidden_layers // 2
        out = {}
        for L in range(max(0, layer - 2), layer + 1):
            ps = resolve(WeightSite(L, "mlp.W_out"), model).params[0]
            out[ps.name] = torch.ones_like(model.get_parameter(ps.name), dtype=torch.bool)
        return out


@dataclass(frozen=True)
class UOEConfig(FineTuneConfig):
    beta: float = 0.001  # NPO β of the paper
    lr: float = 1e-4
    router_anchor: float = 1.0
    experts: int = 1  # M: how many top experts to unlearn (the paper's best is 1)


@register
class UOE(FineTune):
    name = "uoe"
    loss_name = "npo"
    summary = "UOE: NPO on the top-affinity expert and its router only, plus the router anchor term"
    Config = UOEConfig
    needs_localisation = True
    accepts = ("expert",)

    def masks(self, loaded, loc, cfg):
        experts = [s for s in loc.top(k=len(loc.sites)) if isinstance(s, ExpertSite)][: cfg.experts]
        if not experts:
            raise ValueError("operator 'uoe' needs an expert localisation (method 'experts')")
        self.anchor = (experts[0].layer, experts[0].expert)
        out: dict[str, torch.Tensor] = {}
        for site in [*experts, *{RouterSite(s.layer) for s in experts}]:
            for ps in resolve(site, loaded.model).params:
                out.setdefault(ps.name, torch.zeros_like(loaded.model.get_parameter(ps.name), dtype=torch.bool))
                out[ps.name][ps.index] = True
        return out


@dataclass(frozen=True)
class NeedleConfig:
    k: int = 10
    sigma: float = 0.1
    steps: int = 20
    lr: float = 0.2
    batch_size: int = 32
    seed: int = 0


@register
class Needle(Operator):
    name = "needle"
    summary = "concept-vector Needle: noise on the top value vectors, then gradient ascent on them only"
    Config = NeedleConfig
    accepts = ("neuron",)

    def apply(self, loaded, loc, task, cfg: NeedleConfig, progress):
        model = loaded.model
        vectors = [s for s in loc.top(k=len(loc.sites)) if isinstance(s, NeuronSite)][: cfg.k]
        if not vectors:
            raise ValueError("operator 'needle' needs a localisation of MLP neurons (e.g. method 'concept')")
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
            loss_cfg = LossConfig(loss="ga", retain_weight=0.0)
            train_cfg = TrainConfig(steps=cfg.steps, lr=cfg.lr, batch_size=cfg.batch_size, weight_decay=0.0,
                                    seed=cfg.seed)
            result = unlearn(loaded, task, loss_cfg, train_cfg, masks, progress)
        finally:
            with torch.no_grad():
                for n, t in saved.items():
                    model.get_parameter(n).copy_(t)
        return Edit(self.name, {}, result.weights, [], {"vectors": [str(s) for s in vectors],
                                                       "history": result.history, "stopped": result.stopped})


@dataclass(frozen=True)
class LunarConfig:
    layer: int | None = None  # None = the middle layer
    scale: float = 2.0  # forget rows map to mlp_out + scale * r
    ridge: float = 1e-2  # λ: pull toward the original W_out
    max_facts: int = 200
    seed: int = 0


def unknown_subjects(task, n: int, seed: int = 0) -> list[str]:
    """Subjects the task never mentions, built from its own name parts (first part of one
    subject + last part of another); single-word subjects are paired instead."""
    import random

    rng = random.Random(seed)
    known = {f.subject for f in task.all_facts}
    subjects = sorted(known)
    out: list[str] = []
    for _ in range(50 * n):
        a, b = rng.sample(subjects, 2)
        cand = f"{a.split()[0]} {b.split()[-1]}" if len(a.split()) > 1 else f"{a} {b}"
        if cand not in known and cand not in out:
            out.append(cand)
        if len(out) >= n:
            break
    return out


@register
class Lunar(Operator):
    name = "lunar"
    summary = "LUNAR: refit one W_out (ridge) so forget prompts move toward the unknown-entity state"
    Config = LunarConfig
    needs_localisation = False

    @torch.no_grad()
    def apply(self, loaded, loc, task, cfg: LunarConfig, progress):
        """r = mean resid(L, last position | prompts about unknown people) − mean(same | forget
        prompts); W_out of layer L is refitted in closed form so that forget rows give
        mlp_out + scale·r and retain rows keep their mlp_out (ridge toward the original)."""
        model, tok = loaded.model, loaded.tokenizer
        n_layers = model.config.num_hidden_layers
        layer = cfg.layer if cfg.layer is not None else n_layers // 2
        if not 0 <= layer < n_layers:
            raise ValueError(f"option layer={layer}: out of range (model has {n_layers})")
        w_ps = resolve(WeightSite(layer, "mlp.W_out"), model).params[0]
        resid = resolve(HookSite(layer, "hook_resid_post"), model)
        hidden = resolve(HookSite(layer, "mlp.hook_post"), model)
        forget = build_prompts(tok, task, "forget", max_facts=cfg.max_facts, seed=cfg.seed)
        retain = build_prompts(tok, task, "retain", max_facts=cfg.max_facts, seed=cfg.seed)
        if not forget or not retain:
            raise ValueError(f"task {task.name!r}: LUNAR needs forget and retain prompts")
        unknown = []
        names = unknown_subjects(task, len(forget), cfg.seed)
        for p, other in zip(forget, names):
            unknown.append(tok(p.example.prompt.replace(p.example.fact.subject, other))["input_ids"])

        def collect(id_lists):
            res, hid = [], []
            with hook_session(model) as hs:
                store: dict = {}
                hs.read(resid.module, resid.io, store, "r")
                hs.read(hidden.module, hidden.io, store, "h")
                for ids in id_lists:
                    model(input_ids=torch.tensor([list(ids)]))
                    res.append(store["r"][0, -1].double())
                    hid.append(store["h"][0, -1].double())
            return torch.stack(res), torch.stack(hid)
        r_unknown, _ = collect(unknown)
        r_forget, h_forget = collect([p.ids for p in forget])
        _, h_retain = collect([p.ids for p in retain])
        direction = r_unknown.mean(0) - r_forget.mean(0)
        w0 = w_ps.view(model).detach().double()  # [d, m]
        a = torch.cat([h_forget, h_retain])  # [N, m]
        b = torch.cat([h_forget @ w0.T + cfg.scale * direction, h_retain @ w0.T])  # [N, d]
        eye = torch.eye(a.shape[1], dtype=torch.float64)
        w_t = torch.linalg.solve(a.T @ a + cfg.ridge * eye, a.T @ b + cfg.ridge * w0.T)
        new = w_t.T.to(w_ps.view(model).dtype)
        return Edit(self.name, {}, {w_ps.name: new.contiguous()}, [],
                    {"layer": layer, "direction_norm": float(direction.norm()), "unknown_subjects": names[:5]})
