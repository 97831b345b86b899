"""Two lenses over the same HF weights: TransformerLens' `TransformerBridge` and nnsight's
`LanguageModel`. Neither copies a weight, so an edit made on the HF module (or through one
lens) is seen by the other. Both are built lazily and cached on the `LoadedModel`.

The bridge rewires the module tree it is given in place (every submodule becomes a
`*Bridge` wrapper, parameter names gain `_original_component`, hooks are added). So that the
canonical HF module keeps its names (masks, `save_pretrained`, site resolution), the bridge
gets a *twin*: a new module tree whose parameters and buffers are the very same tensor
objects as the HF module's (`shared_twin`). nnsight wraps the HF module itself.
"""
from __future__ import annotations

import copy
import itertools
import logging
import warnings

import torch
from torch import nn


def shared_twin(model: nn.Module) -> nn.Module:
    """A structural copy of `model` that shares every parameter and buffer object."""
    memo = {id(t): t for t in itertools.chain(model.parameters(), model.buffers())}
    return copy.deepcopy(model, memo)


def bridge(loaded):
    """TransformerLens 3 bridge over `loaded.model` (hook names `blocks.L.hook_resid_post` ...)."""
    from transformer_lens.model_bridge import TransformerBridge

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("transformer_lens").setLevel(logging.ERROR)
        b = TransformerBridge.boot_transformers(
            str(loaded.path), hf_model=shared_twin(loaded.model), tokenizer=loaded.tokenizer,
            device=next(loaded.model.parameters()).device, dtype=torch.float32,
        )
    b.eval()
    return b


def nnsight_model(loaded):
    """nnsight `LanguageModel` wrapping the same in-memory module."""
    from nnsight import LanguageModel

    return LanguageModel(loaded.model, tokenizer=loaded.tokenizer)


def hf_logits(loaded, input_ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return loaded.model(input_ids=input_ids).logits


def bridge_logits(loaded, input_ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return loaded.bridge(input_ids, return_type="logits")


def nnsight_logits(loaded, input_ids: torch.Tensor) -> torch.Tensor:
    lm = loaded.nnsight
    with torch.no_grad(), lm.trace(input_ids):
        out = lm.output.save()
    logits = out.logits if hasattr(out, "logits") else out[0]
    return logits.detach()
