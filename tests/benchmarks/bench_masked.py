"""Benchmark: masked vs unmasked fine-tuning step time (printed, not asserted).

    python tests/benchmarks/bench_masked.py [--spec testbed:dense] [--steps 40]

Same loss (NPO + retain NLL), same batches, one run: the whole model (unmasked baseline) vs
masks from a weight localisation (`selective`, 5% of the weights: every parameter partly
trainable, the worst case for masking) and from a neuron localisation (`circuits`, 5% of
the neurons). Run nothing else meanwhile (2 cores).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", default="testbed:dense")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    from workbench.cli.common import table
    from workbench.edit.losses import NPOConfig
    from workbench.edit.trainer import unlearn
    from workbench.localise import localise
    from workbench.models import load

    m = load(args.spec, progress=False)
    task = m.task()
    masks = {
        "unmasked": None,
        "selective 5% of weights": localise(m, task, "selective", {}, progress=False).mask(m.model, fraction=0.05),
        "circuits 5% of neurons": localise(m, task, "circuits", {"nodes": "neuron"}, progress=False).mask(
            m.model, fraction=0.05),
    }
    times: dict[str, list[float]] = {k: [] for k in masks}
    for _ in range(args.repeats):  # interleaved, so drift hits every variant alike
        for name, mask in masks.items():
            t0 = time.perf_counter()
            r = unlearn(m, task, NPOConfig(steps=args.steps), mask, progress=False)
            times[name].append((time.perf_counter() - t0) / r.steps_done)
    base = statistics.median(times["unmasked"])
    rows = [{"variant": k, "trainable": "all" if v is None else sum(int(x.sum()) for x in v.values()),
             "ms_per_step": 1000 * statistics.median(times[k]), "ratio_vs_unmasked": statistics.median(times[k]) / base}
            for k, v in masks.items()]
    print(f"\nmasked vs unmasked fine-tuning on {args.spec} ({args.steps} steps x {args.repeats}, median)")
    print(table(rows))


if __name__ == "__main__":
    main()
