"""Benchmark: testbed training time and cache-hit load time (printed, not asserted).

    python tests/benchmarks/bench_testbed.py [--specs testbed:dense testbed:moe] [--fresh]

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
    args = ap.parse_args()
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


if __name__ == "__main__":
    main()
