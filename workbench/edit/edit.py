"""`Edit`: what an operator produces. A value, not a modified model.

An edit holds
- `weights`: new values for the parameters it changes (HF parameter name -> tensor), and/or
- `interventions`: hook-level changes at activation sites (replace columns by a stored
  vector, resample them from a stored bank, project a direction out),
plus the operator's name, config and provenance. `applied(model)` is a scoped session:
weights are swapped in and hooks attached on entry, and on exit the original weights are
restored bit-identically and exactly the hooks it added are removed. `apply` / `revert` do
the same without a `with`. On disk: `edit.safetensors` + `edit.json`; `export` bakes the edit
into a plain Hugging Face checkpoint directory (interventions that weights can express are
folded in; others are refused with the reason).
"""
from __future__ import annotations

import copy
import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..hooks import HookSession

FORMAT_VERSION = 1
ACTIONS = ("replace", "resample", "project_out", "mask_experts", "sae_clamp", "expert_output")


@dataclass
class Intervention:
    """At `module`'s `io`: `replace` sets columns `cols` to `value`; `resample` sets them to a
    random row of `value` ([bank, width], seeded); `project_out` removes the unit direction
    `value` from the whole activation; `mask_experts` sets router logits `cols` to -inf;
    `sae_clamp` is the conditional negative clamp of SAE features `cols` (the SAE named by
    `extra["sae"]`, a sae-lens directory): f = enc(x), err = x - dec(f), f_j = -c where
    f_j > 0, x' = err + dec(f), at every position but the first (BOS); `expert_output` replaces
    what routed expert `cols[0]` computes, for the tokens routed to it, by `value` ([d]: its mean
    output) or a seeded random row of `value` ([bank, d]), keeping the router's weight."""

    module: str
    io: str
    action: str
    cols: list[int] = field(default_factory=list)
    value: torch.Tensor | None = None
    site: str = ""
    seed: int = 0
    extra: dict = field(default_factory=dict)  # JSON: e.g. {"sae": DIR, "c": 50.0}

    def __post_init__(self):
        if self.action not in ACTIONS:
            raise ValueError(f"intervention action {self.action!r}: expected one of {', '.join(ACTIONS)}")

    def fn(self):
        cols = torch.tensor(self.cols, dtype=torch.long)
        if self.action == "replace":
            def replace(x):
                x = x.clone()
                x[..., cols] = self.value.to(x.dtype)
                return x
            return replace
        if self.action == "resample":
            gen = torch.Generator().manual_seed(self.seed)

            def resample(x):
                x = x.clone()
                rows = torch.randint(0, self.value.shape[0], x.shape[:-1], generator=gen)
                x[..., cols] = self.value[rows].to(x.dtype)
                return x
            return resample
        if self.action == "sae_clamp":
            from ..sae import cached_sae, clamp_fn

            return clamp_fn(cached_sae(self.extra["sae"]), cols, float(self.extra["c"]))
        if self.action == "project_out":
            r = self.value / self.value.norm()

            def project(x):
                return x - (x @ r.to(x.dtype))[..., None] * r.to(x.dtype)
            return project

        def mask(x):
            x = x.clone()
            x[..., cols] = float("-inf")
            return x
        return mask

    def to_json(self) -> dict:
        return {"module": self.module, "io": self.io, "action": self.action, "cols": self.cols,
                "site": self.site, "seed": self.seed, "extra": self.extra}



@dataclass
class Edit:
    operator: str
    config: dict
    weights: dict[str, torch.Tensor] = field(default_factory=dict)
    interventions: list[Intervention] = field(default_factory=list)
    provenance: dict = field(default_factory=dict)

    # -- applying -------------------------------------------------------------------------
    def apply(self, model: nn.Module) -> "AppliedEdit":
        return AppliedEdit(self, model)

    @contextmanager
    def applied(self, model: nn.Module):
        handle = self.apply(model)
        try:
            yield model
        finally:
            handle.revert()

    @property
    def changed_params(self) -> int:
        return sum(t.numel() for t in self.weights.values())

    # -- disk -----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tensors = {f"weight::{n}": t.contiguous() for n, t in self.weights.items()}
        for i, iv in enumerate(self.interventions):
            if iv.value is not None:
                tensors[f"intervention::{i}"] = iv.value.contiguous()
        save_file(tensors, str(path / "edit.safetensors"))
        meta = {"format_version": FORMAT_VERSION, "operator": self.operator, "config": self.config,
                "weights": list(self.weights), "interventions": [iv.to_json() for iv in self.interventions],
                "provenance": self.provenance}
        (path / "edit.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Edit":
        path = Path(path)
        for f in ("edit.json", "edit.safetensors"):
            if not (path / f).is_file():
                raise FileNotFoundError(f"edit {str(path)!r}: missing {f} (expected a directory written by Edit.save)")
        meta = json.loads((path / "edit.json").read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"edit {str(path)!r}: format_version {meta.get('format_version')!r}, expected {FORMAT_VERSION}")
        tensors = load_file(str(path / "edit.safetensors"))
        ivs = [Intervention(**{**d, "value": tensors.get(f"intervention::{i}")}) for i, d in enumerate(meta["interventions"])]
        return cls(meta["operator"], meta["config"], {n: tensors[f"weight::{n}"] for n in meta["weights"]}, ivs,
                   meta["provenance"])

    def export(self, loaded, path: str | Path) -> Path:
        """A plain HF checkpoint (model + tokenizer) with the edit baked into the weights."""
        from .bake import bake

        path = Path(path)
        model = copy.deepcopy(loaded.model)
        with torch.no_grad():
            for n, t in self.weights.items():
                model.get_parameter(n).copy_(t)
        model = bake(model, self.interventions)
        model.save_pretrained(path)
        loaded.tokenizer.save_pretrained(path)
        return path


def _masked_router(cols: list[int]):
    """Re-route around removed experts. Follows the top-k softmax router contract of
    Mixtral-style routers (output = (logits, top-k weights, top-k indices))."""
    idx = torch.tensor(cols, dtype=torch.long)

    def reroute(module, out):
        if not (isinstance(out, tuple) and len(out) == 3):
            raise ValueError(f"expert removal expects a router returning (logits, weights, indices); "
                             f"{type(module).__name__} returns {type(out).__name__}")
        logits = out[0].clone()
        logits[..., idx] = float("-inf")
        probs = torch.softmax(logits.float(), dim=-1)
        top, indices = torch.topk(probs, out[2].shape[-1], dim=-1)
        top = top / top.sum(-1, keepdim=True)
        return logits, top.to(out[1].dtype), indices
    return reroute


def expert_outputs(module, args, expert: int):
    """(token indices routed to `expert`, their routing weights [n, 1], the expert's raw
    outputs [n, d]) inside a Mixtral-style fused experts module called as
    experts(hidden [T, d], top_k_index [T, k], top_k_weights [T, k])."""
    hidden, index, weights = args[:3]
    pos, tok = torch.where((index == expert).T)
    gate, up = nn.functional.linear(hidden[tok], module.gate_up_proj[expert]).chunk(2, dim=-1)
    raw = nn.functional.linear(module.act_fn(gate) * up, module.down_proj[expert])
    return tok, weights[tok, pos, None], raw


def _expert_replacer(expert: int, value: torch.Tensor, seed: int):
    gen = torch.Generator().manual_seed(seed)

    def rewrite(module, args, out):
        tok, w, raw = expert_outputs(module, args, expert)
        if value.dim() == 1:
            new = value.to(raw.dtype).expand_as(raw)
        else:
            new = value[torch.randint(0, value.shape[0], (len(tok),), generator=gen)].to(raw.dtype)
        return out.index_add(0, tok, (w * (new - raw)).to(out.dtype))
    return rewrite


class AppliedEdit:
    """An edit in force on a model; `revert()` restores the exact original state."""

    def __init__(self, edit: Edit, model: nn.Module):
        self.model = model
        self.saved = {n: model.get_parameter(n).detach().clone() for n in edit.weights}
        with torch.no_grad():
            for n, t in edit.weights.items():
                model.get_parameter(n).copy_(t)
        self.session = HookSession(model)
        for iv in edit.interventions:
            if iv.action == "mask_experts":
                self.session.replace_output(iv.module, _masked_router(iv.cols))
            elif iv.action == "expert_output":
                self.session.rewrite(iv.module, _expert_replacer(iv.cols[0], iv.value, iv.seed))
            else:
                self.session.patch(iv.module, iv.io, iv.fn())
        self.active = True

    def revert(self) -> None:
        if not self.active:
            return
        self.session.close()
        with torch.no_grad():
            for n, t in self.saved.items():
                self.model.get_parameter(n).copy_(t)
        self.active = False
