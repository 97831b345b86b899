"""Architecture knowledge: one declarative table per architecture, one `resolve` function.

A table maps the site grammar (`workbench.sites`) onto a Hugging Face module tree:
which parameter (and which slice of it) a weight, head, neuron, expert or router owns, and
where in the module tree an activation site can be read or patched. Shared code asks
`resolve(site, model)`; it never branches on the architecture.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from ..errors import WorkbenchInputError
from ..sites import (ExpertSite, HeadSite, HookSite, NeuronSite, RouterSite, SAEFeatureSite, Site,
                     WeightSite)

# A slice rule: how a unit's index selects part of a parameter.
#   ("rows", n) -> rows  [i*n:(i+1)*n];   ("cols", n) -> columns [:, i*n:(i+1)*n]
#   ("kv_rows", n) -> rows of key/value head i // (n_heads / n_kv_heads)
#   ("index",)  -> first axis [i];        ("all",)    -> the whole tensor
#   ("rows_of", k, n) -> inside the first axis [i], rows [k*n:(k+1)*n]


@dataclass(frozen=True)
class ArchTable:
    name: str
    hf_classes: tuple[str, ...]
    layers: str  # module path of the layer list
    weights: dict[str, tuple[str, tuple]]  # WeightSite name -> (param path, slice rule)
    units: dict[str, tuple[tuple[str, tuple], ...]]  # head|neuron|expert|router -> params
    hooks: dict[str, tuple[str, str]]  # HookSite hook -> (module path, "input"|"output")
    unit_activations: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    # unit kind -> (module path, "input"|"output", slice size name) where its activation is
    biases: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    # block module name -> (config flag that gives its linear maps biases, those linear children)
    output_linears: dict[str, str] = field(default_factory=dict)  # block module name -> the linear writing its output
    lora_modules: tuple[str, ...] = ()  # names of the linear maps a LoRA adapter may wrap
    # MoE only: the module holding a layer's routed experts, how to recompute one expert's
    # output inside its forward, and how to re-route a router around removed experts
    experts: str | None = None
    expert_outputs: Callable | None = None  # (experts module, forward args, e) -> (tokens, weights [n,1], out [n,d])
    reroute: Callable | None = None  # (removed expert ids) -> forward hook (router, output) -> output

    def config_sizes(self, config) -> dict[str, int]:
        heads = config.num_attention_heads
        return {
            "n_layers": config.num_hidden_layers, "n_heads": heads,
            "head_dim": getattr(config, "head_dim", None) or config.hidden_size // heads,
            "d_model": config.hidden_size, "d_mlp": config.intermediate_size,
            "n_experts": getattr(config, "num_local_experts", 0) or 0, "one": 1,
            "kv_group": heads // (getattr(config, "num_key_value_heads", None) or heads),
        }


def _topk_softmax_reroute(cols: list[int]):
    """Re-route a Mixtral-style top-k softmax router around removed experts: its output is
    (logits, top-k weights, top-k indices); removed experts' logits become -inf and the top-k
    is taken again, renormalised."""
    idx = torch.tensor(cols, dtype=torch.long)

    def reroute(module, out):
        if not (isinstance(out, tuple) and len(out) == 3):
            raise WorkbenchInputError(f"expert removal expects a router returning (logits, weights, indices); "
                                      f"{type(module).__name__} returns {type(out).__name__}")
        logits = out[0].clone()
        logits[..., idx] = float("-inf")
        probs = torch.softmax(logits.float(), dim=-1)
        top, indices = torch.topk(probs, out[2].shape[-1], dim=-1)
        top = top / top.sum(-1, keepdim=True)
        return logits, top.to(out[1].dtype), indices
    return reroute


def _fused_expert_outputs(module, args, expert: int):
    """(token indices routed to `expert`, their routing weights [n, 1], the expert's raw
    outputs [n, d]) inside a fused experts module (gate_up_proj [E, 2m, d], down_proj [E, d, m])
    called as experts(hidden [T, d], top_k_index [T, k], top_k_weights [T, k])."""
    hidden, index, weights = args[:3]
    pos, tok = torch.where((index == expert).T)
    gate, up = nn.functional.linear(hidden[tok], module.gate_up_proj[expert]).chunk(2, dim=-1)
    raw = nn.functional.linear(module.act_fn(gate) * up, module.down_proj[expert])
    return tok, weights[tok, pos, None], raw


_ATTN = "model.layers.{L}.self_attn"
_HEAD_PARAMS = (
    (f"{_ATTN}.q_proj.weight", ("rows", "head_dim")),
    (f"{_ATTN}.k_proj.weight", ("kv_rows", "head_dim")),  # grouped-query attention:
    (f"{_ATTN}.v_proj.weight", ("kv_rows", "head_dim")),  # head i reads kv head i // group
    (f"{_ATTN}.o_proj.weight", ("cols", "head_dim")),
)
_COMMON_WEIGHTS = {
    "embed.W_E": ("model.embed_tokens.weight", ("all",)),
    "unembed.W_U": ("lm_head.weight", ("all",)),
    "ln_final.w": ("model.norm.weight", ("all",)),
    "attn.W_Q": (f"{_ATTN}.q_proj.weight", ("all",)),
    "attn.W_K": (f"{_ATTN}.k_proj.weight", ("all",)),
    "attn.W_V": (f"{_ATTN}.v_proj.weight", ("all",)),
    "attn.W_O": (f"{_ATTN}.o_proj.weight", ("all",)),
    "ln1.w": ("model.layers.{L}.input_layernorm.weight", ("all",)),
    "ln2.w": ("model.layers.{L}.post_attention_layernorm.weight", ("all",)),
}
_BIASES = {"mlp": ("mlp_bias", ("gate_proj", "up_proj", "down_proj")),
           "self_attn": ("attention_bias", ("q_proj", "k_proj", "v_proj", "o_proj"))}
_LORA = ("q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj", "gate_proj")
_OUTPUTS = {"mlp": "down_proj", "self_attn": "o_proj"}
_COMMON_HOOKS = {
    "hook_resid_pre": ("model.layers.{L}", "input"),
    "hook_resid_post": ("model.layers.{L}", "output"),
    "hook_resid_mid": ("model.layers.{L}.post_attention_layernorm", "input"),
    "hook_attn_out": (_ATTN, "output"),
    "hook_mlp_out": ("model.layers.{L}.mlp", "output"),
    "attn.hook_z": (f"{_ATTN}.o_proj", "input"),
    "attn.hook_q": (f"{_ATTN}.q_proj", "output"),
    "attn.hook_k": (f"{_ATTN}.k_proj", "output"),
    "attn.hook_v": (f"{_ATTN}.v_proj", "output"),
    "hook_embed": ("model.embed_tokens", "output"),
    "ln_final.hook_normalized": ("model.norm", "output"),
}

LLAMA = ArchTable(
    name="llama",
    hf_classes=("LlamaForCausalLM",),
    layers="model.layers",
    weights={
        **_COMMON_WEIGHTS,
        "mlp.W_in": ("model.layers.{L}.mlp.up_proj.weight", ("all",)),
        "mlp.W_gate": ("model.layers.{L}.mlp.gate_proj.weight", ("all",)),
        "mlp.W_out": ("model.layers.{L}.mlp.down_proj.weight", ("all",)),
    },
    units={
        "head": _HEAD_PARAMS,
        "neuron": (
            ("model.layers.{L}.mlp.down_proj.weight", ("cols", "one")),
            ("model.layers.{L}.mlp.up_proj.weight", ("rows", "one")),
            ("model.layers.{L}.mlp.gate_proj.weight", ("rows", "one")),
        ),
    },
    hooks={
        **_COMMON_HOOKS,
        "mlp.hook_post": ("model.layers.{L}.mlp.down_proj", "input"),
        "mlp.hook_pre": ("model.layers.{L}.mlp.gate_proj", "output"),
        "mlp.hook_out": ("model.layers.{L}.mlp", "output"),
    },
    unit_activations={
        "head": (f"{_ATTN}.o_proj", "input", "head_dim"),
        "neuron": ("model.layers.{L}.mlp.down_proj", "input", "one"),
    },
    biases=_BIASES,
    output_linears=_OUTPUTS,
    lora_modules=_LORA,
)

_EXPERTS = "model.layers.{L}.mlp.experts"
MIXTRAL = ArchTable(
    name="mixtral",
    hf_classes=("MixtralForCausalLM",),
    layers="model.layers",
    weights={
        **_COMMON_WEIGHTS,
        "mlp.W_router": ("model.layers.{L}.mlp.gate.weight", ("all",)),
        "expert.W_gate": (f"{_EXPERTS}.gate_up_proj", ("rows_of", 0, "d_mlp")),
        "expert.W_in": (f"{_EXPERTS}.gate_up_proj", ("rows_of", 1, "d_mlp")),
        "expert.W_out": (f"{_EXPERTS}.down_proj", ("index",)),
    },
    units={
        "head": _HEAD_PARAMS,
        "expert": ((f"{_EXPERTS}.gate_up_proj", ("index",)), (f"{_EXPERTS}.down_proj", ("index",))),
        "router": (("model.layers.{L}.mlp.gate.weight", ("all",)),),
    },
    hooks={
        **_COMMON_HOOKS,
        "mlp.hook_out": ("model.layers.{L}.mlp", "output"),
        "mlp.gate.hook_out": ("model.layers.{L}.mlp.gate", "output"),
    },
    unit_activations={"head": (f"{_ATTN}.o_proj", "input", "head_dim")},
    output_linears={"self_attn": "o_proj"},
    lora_modules=_LORA,
    experts=_EXPERTS,
    expert_outputs=_fused_expert_outputs,
    reroute=_topk_softmax_reroute,
)

ARCHS: dict[str, ArchTable] = {t.name: t for t in (LLAMA, MIXTRAL)}


def table_for(model: nn.Module) -> ArchTable:
    cls = type(model).__name__
    for table in ARCHS.values():
        if cls in table.hf_classes:
            return table
    known = ", ".join(c for t in ARCHS.values() for c in t.hf_classes)
    raise WorkbenchInputError(f"model class {cls!r} has no architecture table; expected one of: {known}")


@dataclass(frozen=True)
class ParamSlice:
    """Part of one parameter: `tensor(model)[index]` is what the site owns."""

    name: str
    index: tuple

    def tensor(self, model: nn.Module) -> torch.Tensor:
        return model.get_parameter(self.name)

    def view(self, model: nn.Module) -> torch.Tensor:
        return self.tensor(model)[self.index]


@dataclass(frozen=True)
class Resolved:
    site: Site
    params: tuple[ParamSlice, ...] = ()  # weights the site owns (empty for pure hooks)
    module: str | None = None  # module path where its activation lives
    io: str | None = None  # "input" or "output" of that module
    act_index: tuple = ()  # slice of the last axis of that activation (units), () = all


def _slice(rule: tuple, i: int, sizes: dict[str, int]) -> tuple:
    kind = rule[0]
    if kind == "all":
        return (slice(None),)
    if kind == "index":
        return (i,)
    if kind == "rows":
        n = sizes[rule[1]]
        return (slice(i * n, (i + 1) * n),)
    if kind == "kv_rows":
        n, j = sizes[rule[1]], i // sizes["kv_group"]
        return (slice(j * n, (j + 1) * n),)
    if kind == "cols":
        n = sizes[rule[1]]
        return (slice(None), slice(i * n, (i + 1) * n))
    if kind == "rows_of":
        n = sizes[rule[2]]
        return (i, slice(rule[1] * n, (rule[1] + 1) * n))
    raise AssertionError(f"unknown slice rule {rule!r}")


def _check_range(site: Site, what: str, value: int, limit: int) -> None:
    if value >= limit:
        raise WorkbenchInputError(f"site {str(site)!r}: {what} {value} out of range (model has {limit})")


def resolve(site: Site | str, model: nn.Module) -> Resolved:
    """The one place a site becomes parameters and a hook point on an HF module."""
    site = Site.parse(site) if isinstance(site, str) else site
    table = table_for(model)
    sizes = table.config_sizes(model.config)
    layer = site.layer
    if layer is not None:
        _check_range(site, "layer", layer, sizes["n_layers"])
    fmt = {"L": layer}

    def unsupported(what: str) -> WorkbenchInputError:
        return WorkbenchInputError(f"site {str(site)!r}: {table.name} models have no {what}; "
                          f"accepted here: {', '.join(sorted(table.units))} units, hooks "
                          f"{', '.join(sorted(table.hooks))}, weights {', '.join(sorted(table.weights))}")

    if isinstance(site, SAEFeatureSite):
        base = resolve(site.hook, model)
        return Resolved(site, (), base.module, base.io, (site.feature,))
    if isinstance(site, HookSite):
        if site.hook not in table.hooks:
            raise unsupported(f"hook {site.hook!r}")
        module, io = table.hooks[site.hook]
        return Resolved(site, (), module.format(**fmt), io)
    if isinstance(site, WeightSite):
        key = f"expert.{site.name}" if site.expert is not None else site.name
        if key not in table.weights:
            raise unsupported(f"weight {site.name!r}" + (" inside experts" if site.expert is not None else ""))
        path, rule = table.weights[key]
        if site.expert is not None:
            _check_range(site, "expert", site.expert, sizes["n_experts"])
        return Resolved(site, (ParamSlice(path.format(**fmt), _slice(rule, site.expert or 0, sizes)),))
    unit_kind, i, limit = {
        HeadSite: lambda s: ("head", s.head, sizes["n_heads"]),
        NeuronSite: lambda s: ("neuron", s.index, sizes["d_mlp"]),
        ExpertSite: lambda s: ("expert", s.expert, sizes["n_experts"]),
        RouterSite: lambda s: ("router", 0, 1),
    }[type(site)](site)
    if unit_kind not in table.units:
        raise unsupported(f"{unit_kind} sites")
    _check_range(site, unit_kind, i, limit)
    params = tuple(ParamSlice(p.format(**fmt), _slice(rule, i, sizes)) for p, rule in table.units[unit_kind])
    module = io = None
    act: tuple = ()
    if unit_kind in table.unit_activations:
        path, io, size = table.unit_activations[unit_kind]
        module = path.format(**fmt)
        n = sizes[size]
        act = (slice(i * n, (i + 1) * n),)
    return Resolved(site, params, module, io, act)


def sites_of_kind(model: nn.Module, kind: str) -> list[Site]:
    """Every unit site of one kind in the model (heads, neurons, experts, routers)."""
    table = table_for(model)
    s = table.config_sizes(model.config)
    if kind not in table.units:
        raise WorkbenchInputError(f"site kind {kind!r}: {table.name} models have {', '.join(sorted(table.units))}")
    make = {
        "head": lambda L: [HeadSite(L, h) for h in range(s["n_heads"])],
        "neuron": lambda L: [NeuronSite(L, j) for j in range(s["d_mlp"])],
        "expert": lambda L: [ExpertSite(L, e) for e in range(s["n_experts"])],
        "router": lambda L: [RouterSite(L)],
    }[kind]
    return [site for L in range(s["n_layers"]) for site in make(L)]


def weight_sites(model: nn.Module) -> list[tuple[WeightSite, ParamSlice]]:
    """Every weight site of the model with the one parameter slice it owns."""
    table = table_for(model)
    sizes = table.config_sizes(model.config)
    out = []
    for key in table.weights:
        path = table.weights[key][0]
        layers = range(sizes["n_layers"]) if "{L}" in path else [None]
        for layer in layers:
            if key.startswith("expert."):
                sites = [WeightSite(layer, key.removeprefix("expert."), e) for e in range(sizes["n_experts"])]
            else:
                sites = [WeightSite(layer, key)]
            out.extend((s, resolve(s, model).params[0]) for s in sites)
    return out


def component_weights(model: nn.Module, site: Site) -> list[WeightSite]:
    """The weight sites of `site`'s layer and component (e.g. hook_mlp_out -> that MLP's
    matrices): what fine-tuning a whole component may change. Norm weights are excluded."""
    layer, comp = site.layer, site.component
    found = [w for w, _ in weight_sites(model) if w.layer == layer and w.component == comp]
    if not found:
        raise WorkbenchInputError(f"site {str(site)!r}: no weights belong to component {comp!r} of layer {layer}")
    return found
