"""Two lenses over the same HF module: TransformerLens' `TransformerBridge` and nnsight's
`LanguageModel`. Neither copies the weights, so an edit made on the HF module (or through
one lens) is seen by the other. Both are built lazily and cached on the `LoadedModel`.
"""
from __future__ import annotations

import logging
import warnings

import torch


def bridge(loaded):
    """TransformerLens 3 bridge over `loaded.model` (hook names `blocks.L.hook_resid_post` ...)."""
    from transformer_lens.model_bridge import TransformerBridge

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("transformer_lens").setLevel(logging.ERROR)
        b = TransformerBridge.boot_transformers(
            str(loaded.path), hf_model=loaded.model, tokenizer=loaded.tokenizer,
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
