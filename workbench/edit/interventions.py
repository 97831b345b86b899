"""Hook-level interventions: one class per kind, each knowing how to hook and how to bake.

An intervention acts at one activation point of an HF module (`module`, "input" | "output",
as `models.arch.resolve` gives for a site). `attach(session)` adds its hook to a scoped
`HookSession`; `bake(model)` folds it into the weights of a model copy so an edit exports as a
plain HF checkpoint, or refuses with the reason when the weights cannot express it (it
depends on the input at run time). On disk an intervention is its JSON (`to_json`) plus its
tensor `value`; `Intervention.from_json` rebuilds the right class from the `action` name.

Kinds (`action`):
- `replace`: columns `cols` set to `value`; with `extra={"positions": "after_first"}` the first
  position (BOS) is left as it is;
- `resample`: columns `cols` set to a seeded random row of `value` ([bank, width]);
- `project_out`: the unit direction `value` removed from the whole activation;
- `mask_experts`: router logits of experts `cols` set to -inf, the top-k taken again;
- `sae_clamp`: the conditional negative clamp of SAE features `cols` (the SAE in
  `extra["sae"]`, clamp value `extra["c"]`), error term kept, BOS untouched;
- `expert_output`: what routed expert `cols[0]` computes for the tokens routed to it is
  replaced by `value` ([d]: its mean output) or a seeded random row of `value` ([bank, d]),
  keeping the router's weight.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from ..errors import WorkbenchInputError
from ..hooks import HookSession, at_sequence_start
from ..models.arch import table_for
from ..sae import cached_sae, clamp_fn

ACTIONS: dict[str, type["Intervention"]] = {}


def _register(cls):
    ACTIONS[cls.action] = cls
    return cls


@dataclass
class Intervention:
    module: str
    io: str
    cols: list[int] = field(default_factory=list)
    value: torch.Tensor | None = None
    site: str = ""
    seed: int = 0
    extra: dict = field(default_factory=dict)  # JSON: e.g. {"sae": DIR, "c": 50.0}
    action: ClassVar[str]
    exportable: ClassVar[bool] = False  # whether `bake` can fold it into weights

    def attach(self, session: HookSession) -> None:
        """Add this intervention's hook to a scoped session."""
        session.patch(self.module, self.io, self.fn())

    def fn(self):
        """activation -> activation, for `HookSession.patch`."""
        raise NotImplementedError

    def bake(self, model: nn.Module) -> None:
        raise WorkbenchInputError(f"cannot export this edit: a {self.action!r} intervention at {self.module!r} "
                                  f"depends on the input at run time; keep it as an edit (Edit.save / Edit.applied)")

    def to_json(self) -> dict:
        return {"module": self.module, "io": self.io, "action": self.action, "cols": self.cols,
                "site": self.site, "seed": self.seed, "extra": self.extra}

    @staticmethod
    def from_json(d: dict, value: torch.Tensor | None) -> "Intervention":
        d = dict(d)
        action = d.pop("action", None)
        if action not in ACTIONS:
            raise WorkbenchInputError(f"intervention action {action!r}: expected one of {', '.join(ACTIONS)}")
        return ACTIONS[action](**d, value=value)


@_register
@dataclass
class Replace(Intervention):
    action: ClassVar[str] = "replace"

    @property
    def exportable(self) -> bool:  # type: ignore[override]
        return self.extra.get("positions", "all") == "all"

    def fn(self):
        cols = torch.tensor(self.cols, dtype=torch.long)
        after_first = self.extra.get("positions") == "after_first"

        def replace(x):
            x = x.clone()
            start = 1 if after_first and at_sequence_start() else 0
            if start:
                x[:, start:, cols] = self.value.to(x.dtype)
            else:
                x[..., cols] = self.value.to(x.dtype)
            return x
        return replace

    def bake(self, model: nn.Module) -> None:
        """On the input columns of a linear map (heads at `o_proj`, neurons at `down_proj`):
        W x + b with x[cols] = v  ==  W[:, cols] = 0, b += W[:, cols] v. On the output of an MLP
        (all columns): the down projection becomes 0 with bias v."""
        if not self.exportable:
            super().bake(model)
        lin, path = _linear_for(model, self.module, self.io)
        block = path.split(".")[-2]
        cols = torch.tensor(self.cols, dtype=torch.long)
        value = self.value.to(lin.weight.dtype)
        if self.io == "input":
            shift = lin.weight[:, cols] @ value
            if bool(shift.abs().max() > 0):
                _enable_bias(model, block)
                lin.bias += shift
            lin.weight[:, cols] = 0
        else:
            if bool(value.abs().max() > 0):
                _enable_bias(model, block)
                lin.bias[cols] = value
            elif lin.bias is not None:
                lin.bias[cols] = 0
            lin.weight[cols, :] = 0


@_register
@dataclass
class Resample(Intervention):
    action: ClassVar[str] = "resample"

    def fn(self):
        cols = torch.tensor(self.cols, dtype=torch.long)
        gen = torch.Generator().manual_seed(self.seed)

        def resample(x):
            x = x.clone()
            rows = torch.randint(0, self.value.shape[0], x.shape[:-1], generator=gen)
            x[..., cols] = self.value[rows].to(x.dtype)
            return x
        return resample


@_register
@dataclass
class ProjectOut(Intervention):
    action: ClassVar[str] = "project_out"
    exportable: ClassVar[bool] = True

    def fn(self):
        r = self.value / self.value.norm()

        def project(x):
            return x - (x @ r.to(x.dtype))[..., None] * r.to(x.dtype)
        return project

    def bake(self, model: nn.Module) -> None:
        """Weight orthogonalisation of a linear or embedding output: W <- W - r rᵀ W."""
        if self.io != "output":
            raise WorkbenchInputError(f"cannot export this edit: projection on the input of {self.module!r}")
        lin, _ = _linear_for(model, self.module, self.io)
        r = (self.value / self.value.norm()).to(lin.weight.dtype)
        if isinstance(lin, nn.Embedding):
            lin.weight -= (lin.weight @ r)[:, None] * r[None, :]
        else:
            lin.weight -= r[:, None] * (r[None, :] @ lin.weight)
            if lin.bias is not None:
                lin.bias -= (lin.bias @ r) * r


@_register
@dataclass
class MaskExperts(Intervention):
    action: ClassVar[str] = "mask_experts"

    def attach(self, session: HookSession) -> None:
        reroute = table_for(session.model).reroute
        if reroute is None:
            raise WorkbenchInputError(f"{table_for(session.model).name} models have no router to mask experts in")
        session.replace_output(self.module, reroute(self.cols))


@_register
@dataclass
class SAEClamp(Intervention):
    action: ClassVar[str] = "sae_clamp"

    def fn(self):
        return clamp_fn(cached_sae(self.extra["sae"]), self.cols, float(self.extra["c"]))


@_register
@dataclass
class ExpertOutput(Intervention):
    action: ClassVar[str] = "expert_output"

    def attach(self, session: HookSession) -> None:
        outputs = table_for(session.model).expert_outputs
        expert, value = self.cols[0], self.value
        gen = torch.Generator().manual_seed(self.seed)

        def rewrite(module, args, out):
            tok, w, raw = outputs(module, args, expert)
            if value.dim() == 1:
                new = value.to(raw.dtype).expand_as(raw)
            else:
                new = value[torch.randint(0, value.shape[0], (len(tok),), generator=gen)].to(raw.dtype)
            return out.index_add(0, tok, (w * (new - raw)).to(out.dtype))
        session.rewrite(self.module, rewrite)


# -- baking helpers -------------------------------------------------------------------------
def _enable_bias(model: nn.Module, block: str) -> None:
    """Switch on the biases of a block's linear maps through the config flag that makes a
    reloaded model have them (every other bias of that kind stays zero)."""
    table = table_for(model)
    if block not in table.biases:
        raise WorkbenchInputError(f"cannot export this edit: {table.name} models have no bias option for "
                                  f"{block!r} blocks")
    flag, children = table.biases[block]
    if getattr(model.config, flag):
        return
    setattr(model.config, flag, True)
    for name, module in model.named_modules():
        if name.endswith("." + block):
            for child in children:
                lin = getattr(module, child, None)
                if isinstance(lin, nn.Linear) and lin.bias is None:
                    p = next(lin.parameters())
                    lin.bias = nn.Parameter(torch.zeros(lin.out_features, dtype=p.dtype, device=p.device))


def _linear_for(model: nn.Module, path: str, io: str) -> tuple[nn.Module, str]:
    """The linear (or embedding) map whose weights can express an intervention at `path`:
    the module itself, or for a block's output the linear that writes it (the table's
    `output_linears`)."""
    module = model.get_submodule(path)
    if isinstance(module, (nn.Linear, nn.Embedding)):
        return module, path
    child = table_for(model).output_linears.get(path.rsplit(".", 1)[-1])
    if io == "output" and child and isinstance(getattr(module, child, None), nn.Linear):
        return getattr(module, child), f"{path}.{child}"
    raise WorkbenchInputError(f"cannot export this edit: no weight at {path!r} ({io}) can express it")


@torch.no_grad()
def bake(model: nn.Module, interventions: list[Intervention]) -> nn.Module:
    """Fold every intervention into `model`'s weights (in place); refuses those that cannot."""
    for iv in interventions:
        iv.bake(model)
    return model
