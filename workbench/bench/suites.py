"""The benchmarks of `workbench bench`, each against the reference a researcher would use
instead (or the machine's own limit), on the same inputs, in the same process.

- `gemm`: the best fp32 and bf16 matrix-multiply throughput torch reaches here: the peak
  that the training step's achieved FLOP/s is a fraction of;
- `lens`: TransformerLens' bridge, the bridge with a full activation cache, and nnsight
  against the plain HF forward;
- `patching`: the workbench's activation patching against TransformerLens' own patching
  utilities (`transformer_lens.patching`) on the same nodes, prompts and metric (same scores
  required); attribution patching against activation patching (speed and Spearman);
- `scoring`: the workbench's multiple-choice scoring against lm-eval's HF `loglikelihood` on
  the same items (same choices required);
- `step`: the masked unlearning trainer (unmasked, 5% of the weights, 5% of the neurons)
  against a plain PyTorch loop with the same loss and batches; the plain step's achieved
  FLOP/s as a fraction of the GEMM peak, fp32 and bf16 autocast;
- `scaling`: a study cell's time (localise, edit, probe) against the number of facts and
  against the model's size, with the fitted exponent.

`quick` runs every benchmark on the small testbed world with small inputs: a smoke run.
"""
from __future__ import annotations

from typing import Callable

from .compute import gemm_peak, lens, patching
from .context import Context
from .core import Row
from .scoring import scoring
from .training import scaling, step

BENCHES: dict[str, tuple[Callable[[Context], list[Row]], str]] = {
    "gemm": (gemm_peak, "the machine's limit: best fp32/bf16 matmul throughput"),
    "lens": (lens, "TransformerLens bridge, bridge + cache, nnsight vs the HF forward"),
    "patching": (patching, "activation patching vs transformer_lens.patching; attribution vs activation"),
    "scoring": (scoring, "multiple-choice scoring vs lm-eval's loglikelihood"),
    "step": (step, "masked unlearning trainer vs a plain loop; FLOP/s vs the GEMM peak"),
    "scaling": (scaling, "a study cell's time vs facts and vs model size"),
}
