"""The faithfulness table of the localisers on a testbed model, with 95% intervals over people.

    python scripts/faithfulness_intervals.py [SPEC]      # default: testbed:dense

For each localiser, at 1% and 5% of its site kind: the forget and retain drops when its top
sites are ablated, the interval of the forget drop's excess over twice the random drop (5
draws), the interval of forget minus retain, and the two verdicts (`pass` on the point
estimates, `resolved` for the whole interval). Reproduces the table in the comment of
tests/integration/test_faithfulness.py.
"""
from __future__ import annotations

import sys

from workbench.faithfulness import TABLE_RUNS, ablation_check
from workbench.localise import localise
from workbench.models import load


def main(spec: str) -> None:
    m = load(spec, progress=False)
    task = m.task()
    for label, (method, options) in TABLE_RUNS.items():
        loc = localise(m, task, method, options, progress=False)
        for r in ablation_check(m, task, loc, budgets=(0.01, 0.05), draws=5):
            iv = r.intervals
            print(f"{label:21s} {r.budget:4.0%}  forget {r.forget_drop:.3f} retain {r.retain_drop:.3f} "
                  f"random {r.random_forget_drop:.3f}  excess [{iv['excess_over_random'][0]:.3f}, "
                  f"{iv['excess_over_random'][1]:.3f}]  forget-retain [{iv['forget_minus_retain'][0]:.3f}, "
                  f"{iv['forget_minus_retain'][1]:.3f}]  pass={r.passed} resolved={r.resolved}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "testbed:dense")
