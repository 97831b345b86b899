"""Benchmark: attribution patching vs activation patching on the same nodes (printed).

    python tests/benchmarks/bench_patching.py [--specs testbed:dense smollm2-135m-instruct]
        [--nodes head,mlp] [--max-facts 200]

For each model: the forget prompts of its default task, subject corruption, nodes = every
attention head and MLP output of every layer. Prints wall time of each method (same run,
side by side), the ratio, and the Spearman correlation of the signed scores (and of |score|).
Run nothing else meanwhile (2 cores).
"""
from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--specs", nargs="+", default=["testbed:dense", "smollm2-135m-instruct"])
    ap.add_argument("--nodes", default="head,mlp")
    ap.add_argument("--max-facts", type=int, default=200)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    from workbench.cli.common import table
    from workbench.localise.circuits import CircuitConfig, node_groups, patching_scores
    from workbench.tasks.prompts import build_prompts
    from workbench.localise.agreement import spearman
    from workbench.models import load

    rows = []
    for spec in args.specs:
        m = load(spec, progress=False)
        task = m.task()
        prompts = build_prompts(m.tokenizer, task, "forget", max_facts=args.max_facts)
        groups = node_groups(m.model, tuple(args.nodes.split(",")), range(m.model.config.num_hidden_layers))
        n_nodes = sum(len(g.sites) for g in groups)
        secs, scores = {}, {}
        for method in ("attribution", "activation"):
            t0 = time.perf_counter()
            s = patching_scores(m, prompts, groups, CircuitConfig(method=method), progress=True)
            secs[method] = time.perf_counter() - t0
            scores[method] = torch.cat([s[i] for i in range(len(groups))])
        a, b = scores["attribution"], scores["activation"]
        rows.append({"model": spec, "prompts": len(prompts), "nodes": n_nodes,
                     "attribution_s": secs["attribution"], "activation_s": secs["activation"],
                     "speedup": secs["activation"] / secs["attribution"],
                     "spearman": spearman(a, b), "spearman_abs": spearman(a.abs(), b.abs())})
        print(table(rows[-1:]), flush=True)
    print("\nattribution vs activation patching (same nodes, same prompts, one run)")
    print(table(rows))


if __name__ == "__main__":
    main()
