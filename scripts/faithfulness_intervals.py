"""The faithfulness table of the localisers on a testbed model, with 95% intervals over people.

    python scripts/faithfulness_intervals.py [SPEC] [DRAWS]    # default: testbed:dense, 20 draws

For each localiser, at 1% and 5% of the eligible parameters: per held-out split (forget,
neighbour, retain_eval) the drop when its top sites are ablated, the mean drop of random sites
of the same kind, the 95% interval of the excess (drop - random), and the verdict word
(`workbench.faithfulness.judge`). Reproduces the table in the comment of
tests/integration/test_faithfulness.py.
"""
from __future__ import annotations

import sys

from workbench.faithfulness import SPLITS, TABLE_RUNS, ablation_check
from workbench.localise import localise
from workbench.models import load


def main(spec: str, draws: int) -> None:
    m = load(spec, progress=False)
    task = m.task()
    for label, (method, options) in TABLE_RUNS.items():
        loc = localise(m, task, method, options, progress=False)
        for r in ablation_check(m, task, loc, budgets=(0.01, 0.05), draws=draws):
            d = r.as_dict()
            cells = "  ".join(f"{s} {d[f'{s}_drop']:.3f}/{d[f'{s}_random']:.3f} {d[f'{s}_excess_95']}" for s in SPLITS)
            print(f"{label:21s} {r.budget:4.0%} n={r.n} params={r.params}  {cells}  {r.verdict}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "testbed:dense", int(sys.argv[2]) if len(sys.argv) > 2 else 20)
