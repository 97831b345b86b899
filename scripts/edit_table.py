"""Operator x localiser results on the testbed: forget / retain / neighbour accuracy (every
non-multiple-choice form) of each edit, next to the original model and the oracle.

    python scripts/edit_table.py [--spec testbed:dense] [--json out.json]

Each row: a localiser (or none = the whole model), an operator with its options, and the
accuracies; `target` marks rows with forget <= oracle + 0.05, retain >= 95% and neighbour
>= 90% of the original's.
"""
from __future__ import annotations

import argparse
import json
import os
import time

ROWS = [
    # (localiser, localiser options, operator, operator options)
    ("circuits", {"nodes": "neuron"}, "ablate", {"mode": "mean", "fraction": 0.05}),
    ("circuits", {"mode": "flu"}, "ablate", {"mode": "mean", "fraction": 0.05}),
    ("selective", {}, "ablate", {"fraction": 0.01}),
    ("concept", {}, "needle", {}),
    (None, {}, "directional", {}),
    (None, {}, "directional", {"weight_form": True}),
    *[(loc, lo, op, oo) for op, oo in [("graddiff", {}), ("npo", {}), ("simnpo", {}),
                                        ("rmu", {"lr": 3e-3, "steps": 100})]
      for loc, lo in [(None, {}), ("wagle", {}), ("circuits", {"mode": "flu"}), ("concept", {})]],
    ("selective", {}, "npo", {}),
    ("selective", {}, "graddiff", {}),
    # the mechanistic-unlearning loss with a heavier retain term drawn 75% from retain people
    # who share a name part with a forget person (the neighbours' weak spot)
    *[(loc, lo, "mu", {"retain_weight": 5, "retain_similar": 0.75, "steps": 150, "lr": 3e-4, **extra})
      for loc, lo, extra in [(None, {}, {}), ("wagle", {}, {"fraction": 0.5}), ("selective", {}, {"fraction": 0.5}),
                             ("circuits", {"mode": "flu"}, {"fraction": 0.2})]],
    ("wagle", {}, "simnpo", {"retain_weight": 5, "retain_similar": 0.75, "steps": 200, "lr": 1e-3, "fraction": 0.5}),
]

# testbed:moe: the expert localiser (UOE affinity) with its natural operators
ROWS_MOE = [
    ("experts", {}, "remove-experts", {"k": 1}),
    ("experts", {}, "uoe", {}),
    ("experts", {}, "uoe", {"lr": 1e-3, "steps": 100}),
    ("experts", {}, "uoe", {"lr": 1e-3, "steps": 100, "router_anchor": 0.0}),
    (None, {}, "npo", {}),
    (None, {}, "mu", {"retain_weight": 5, "retain_similar": 0.75, "steps": 150, "lr": 3e-4}),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", default="testbed:dense")
    ap.add_argument("--json", default=None)
    ap.add_argument("--max-facts", type=int, default=None)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    from workbench.cli.common import table
    from workbench.edit import apply_operator
    from workbench.localise.base import localise_cached
    from workbench.models import load
    from workbench.models.knowledge import split_accuracy

    m = load(args.spec, progress=False)
    task = m.task()
    acc = lambda model, tok: split_accuracy(model, tok, task, max_facts=args.max_facts)  # noqa: E731
    original = acc(m.model, m.tokenizer)
    oracle = load(m.oracle_spec, progress=False)
    orc = acc(oracle.model, oracle.tokenizer)
    rows = [{"localiser": "-", "operator": "original", **original}, {"localiser": "-", "operator": "oracle", **orc}]
    print(table(rows), flush=True)
    from workbench.localise.experts import index_overlap, routing

    is_moe = "expert" in m.arch.units
    forget_text = [task.render(f, "para0") for f in task.facts("forget")]
    before = routing(m, forget_text, indices=True)[-1] if is_moe else None
    for loc_name, loc_opts, op, op_opts in (ROWS_MOE if is_moe else ROWS):
        loc = localise_cached(m, task, loc_name, loc_opts, progress=False)[0] if loc_name else None
        t0 = time.perf_counter()
        edit = apply_operator(m, loc, task, op, op_opts, progress=False)
        with edit.applied(m.model):
            r = acc(m.model, m.tokenizer)
            after = routing(m, forget_text, indices=True)[-1] if is_moe else None
        label = "none" if not loc_name else loc_name + ("[" + ",".join(f"{k}={v}" for k, v in loc_opts.items()) + "]"
                                                         if loc_opts else "")
        if is_moe:  # routing shift on forget text (1 = same experts as the original)
            r["routing_overlap"] = sum(index_overlap(before, after)) / m.model.config.num_hidden_layers
        ok = (r["forget"] <= orc["forget"] + 0.05 and r["retain"] >= 0.95 * original["retain"]
              and r["neighbour"] >= 0.90 * original["neighbour"])
        rows.append({"localiser": label, "operator": op + (str(op_opts) if op_opts else ""), **r,
                     "seconds": time.perf_counter() - t0, "target": "yes" if ok else ""})
        print(table(rows[-1:]), flush=True)
    print(f"\noperator x localiser on {args.spec} (accuracy over every non-MCQ form)")
    print(table(rows, ["localiser", "operator", "forget", "retain", "neighbour", "seconds", "target"]
                + (["routing_overlap"] if is_moe else [])))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
