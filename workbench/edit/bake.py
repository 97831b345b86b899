"""Fold hook-level interventions into weights, so an edited model exports as a plain HF
checkpoint that reproduces the hooked logits.

- `replace` on the input columns of a linear map (heads at `o_proj`, neurons at
  `down_proj`): out = W x + b with x[cols] = v  ==  W[:, cols] = 0 and b += W[:, cols] v.
- `replace` on the output of an MLP (all columns): the down projection becomes 0 with bias v.
- `project_out` of r on a linear or embedding output: W <- W - r rᵀ W (weight orthogonalisation).
Biases are switched on through the config flag that makes the reloaded model have them
(`mlp_bias` / `attention_bias` for Llama; every other bias of that kind stays zero).
`resample`, `mask_experts`, `sae_clamp` and `expert_output` (mean/resampled expert outputs)
depend on the input at run time: exporting them is refused.
"""
from __future__ import annotations

import torch
from torch import nn

# module name suffix -> (config flag, linear children that flag gives a bias)
BIAS_FLAGS = {
    "mlp": ("mlp_bias", ("gate_proj", "up_proj", "down_proj")),
    "self_attn": ("attention_bias", ("q_proj", "k_proj", "v_proj", "o_proj")),
}


def _enable_bias(model: nn.Module, block: str) -> None:
    flag, children = BIAS_FLAGS[block]
    if not hasattr(model.config, flag):
        raise ValueError(f"cannot export this edit: {type(model).__name__} has no {flag!r} option for biases")
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
    module = model.get_submodule(path)
    if isinstance(module, (nn.Linear, nn.Embedding)):
        return module, path
    if io == "output" and isinstance(getattr(module, "down_proj", None), nn.Linear):
        return module.down_proj, path + ".down_proj"
    raise ValueError(f"cannot export this edit: no weight at {path!r} ({io}) can express it")


@torch.no_grad()
def bake(model: nn.Module, interventions) -> nn.Module:
    for iv in interventions:
        if iv.action in ("resample", "mask_experts", "sae_clamp", "expert_output"):
            raise ValueError(f"cannot export this edit: a {iv.action!r} intervention at {iv.module!r} depends on "
                             f"the input at run time; keep it as an edit (Edit.save / Edit.applied)")
        lin, path = _linear_for(model, iv.module, iv.io)
        if iv.action == "project_out":
            if iv.io != "output":
                raise ValueError(f"cannot export this edit: projection on the input of {iv.module!r}")
            r = (iv.value / iv.value.norm()).to(lin.weight.dtype)
            if isinstance(lin, nn.Embedding):
                lin.weight -= (lin.weight @ r)[:, None] * r[None, :]
            else:
                lin.weight -= r[:, None] * (r[None, :] @ lin.weight)
                if lin.bias is not None:
                    lin.bias -= (lin.bias @ r) * r
            continue
        block = path.split(".")[-2]
        cols = torch.tensor(iv.cols, dtype=torch.long)
        value = iv.value.to(lin.weight.dtype)
        if iv.io == "input":
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
    return model
