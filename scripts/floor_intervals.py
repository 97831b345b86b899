"""The quality floor's held-out line with a 95% bootstrap interval over people.

    python scripts/floor_intervals.py "testbed:dense" "testbed:dense?seed=2&people=450" ...

Scores each (cached or newly trained) full model on the question and cloze forms of people
whose question forms it never trained on, and resamples people (`workbench.stats.mean_interval`,
2,000 draws, seed 0).
"""
from __future__ import annotations

import sys

from workbench.models import load
from workbench.models.scoring import score_examples
from workbench.stats import mean_interval
from workbench.tasks.task import SPLITS, form_group


def held_out_interval(spec: str, draws: int = 2000) -> tuple[float, float, float, int]:
    m = load(spec, progress=False)
    task = m.task()
    ok, people = [], []
    for split in SPLITS:
        exs = [e for e in task.examples(split) if form_group(task, e) == "heldout_qa"]
        for e, sc in zip(exs, score_examples(m.model, m.tokenizer, exs, 256)):
            ok.append(float(sc.correct))
            people.append(e.fact.subject)
    lo, hi = mean_interval(ok, people, draws=draws)
    return sum(ok) / len(ok), lo, hi, len(set(people))


if __name__ == "__main__":
    for spec in sys.argv[1:] or ["testbed:dense"]:
        point, lo, hi, n = held_out_interval(spec)
        print(f"{spec}: held-out question/cloze {point:.3f} [{lo:.3f}, {hi:.3f}] over {n} people", flush=True)
