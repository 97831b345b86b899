"""Benchmark: testbed training time and cache-hit load time (printed, not asserted).

    python tests/benchmarks/bench_testbed.py [--specs testbed:dense testbed:moe] [--fresh]
    python tests/benchmarks/bench_testbed.py --step-times [--steps 20]

--step-times measures one training step of the default world per architecture and precision,
single-threaded as the testbed trains, side by side in one run, and prints the bf16/fp32
ratio with what `native_bf16()` detected (the recipe trains dense models in bf16 only there).

--fresh trains into a temporary cache (minutes per model); without it, entries already in
$WORKBENCH_CACHE are reused and their recorded training times are reported. Run nothing
else on the machine meanwhile: two torch processes on 2 cores slow each other many-fold.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--specs", nargs="+", default=["testbed:dense", "testbed:dense?oracle=1",
                                                  "testbed:moe", "testbed:moe?oracle=1"])
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("--step-times", action="store_true")
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    if args.step_times:
        return step_times(args.steps)
    if args.fresh:
        os.environ["WORKBENCH_CACHE"] = tempfile.mkdtemp(prefix="wb-bench-")
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    from workbench.models import load, testbed

    print(f"{'spec':28s} {'params':>9s} {'train s':>8s} {'hit load s (median of 3)':>26s}")
    for spec in args.specs:
        tspec = testbed.TestbedSpec.parse(spec)
        path, _ = testbed.prepare(tspec, progress=True)
        hits = []
        for _ in range(3):
            t0 = time.perf_counter()
            m = load(spec, progress=False)
            hits.append(time.perf_counter() - t0)
        print(f"{spec:28s} {m.n_params:9,d} {m.info['train_seconds']:8.1f} {statistics.median(hits):26.2f}")


def step_times(steps: int) -> None:
    import tempfile
    from pathlib import Path

    import torch

    from workbench.models import testbed
    from workbench.models.tokenizer import build_tokenizer
    from workbench.models.train import TrainConfig, native_bf16, train_lm
    from workbench.tasks.world import World

    torch.set_num_threads(testbed.TRAIN_THREADS)
    world = World()
    tok = build_tokenizer(world.vocabulary(), Path(tempfile.mkdtemp(prefix="wb-tok-")))
    seqs = testbed.token_sequences(tok, world.corpus())
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"native bf16: {native_bf16()}; ms per training step (batch 64, one thread), {steps} steps after 3 warm-up")
    ms = {}
    for arch, precision in (("dense", "fp32"), ("dense", "bf16"), ("moe", "fp32")):
        model = testbed.untrained_model(arch, tok)
        train_lm(model, seqs, tok.pad_token_id, TrainConfig(steps=3, precision=precision), 0, progress=False)
        t0 = time.perf_counter()
        train_lm(model, seqs, tok.pad_token_id, TrainConfig(steps=steps, precision=precision), 0, progress=False)
        ms[arch, precision] = (time.perf_counter() - t0) / steps * 1000
        print(f"  {arch:6s} {precision}: {ms[arch, precision]:7.1f} ms")
    print(f"dense bf16 / fp32: {ms['dense', 'bf16'] / ms['dense', 'fp32']:.2f}x "
          f"(the recipe uses {testbed.TestbedSpec.parse('testbed:dense').train_config.precision} here)")


if __name__ == "__main__":
    main()
