"""The faithfulness criterion, stated once, the row every check reports, and what every check
does: measure accuracy with an edit on, against the same with random edits of the same kind.

**What is measured.** Three held-out sets (`check_examples`), all in the task's evaluation forms
(the forms no localiser reads, `workbench.tasks.declared.eval_forms`; for a real model's task,
which has no training record and whose usable facts are those the model completes in the
declarative forms, those forms: the forget facts' forms are then the ones the localiser read
too, the neighbour and retain-eval people are still held out): `forget` (the forget
facts), `neighbour` (the people built to resemble the forget people: the hard case) and
`retain_eval` (the retain people no edit or localiser reads). For each, the **drop** in accuracy
(before - after) when the top sites are edited, the **random drop** (the mean over random draws
of the same site kind, stratified and excluding the top sites: see each check), and the
**excess** = drop - random drop, paired per fact. Every number carries a 95% bootstrap interval
over people (`workbench.stats`).

**The verdict** (`judge`), per budget, with a minimum effect `min_effect` (default
`MIN_EFFECT` = 0.05: five points of accuracy):
- `specific`: the forget excess is an effect (its interval lies above 0 and it is at least
  `min_effect`) and lies significantly above the neighbour excess and the retain_eval excess
  (the intervals of both differences lie above 0);
- `unspecific`: not specific, and the edit breaks what it should spare beyond what random sites
  of the same kind break: the neighbour or the retain_eval excess is an effect (interval above
  0, at least `min_effect`). Ablating a whole late MLP reads `unspecific`: it breaks everything;
- `no effect`: the forget excess's interval lies below `min_effect` (the check could have seen
  an effect of that size and did not) and nothing else broke;
- `inconclusive`: anything else (an effect the intervals cannot tell from noise), and always
  when forget accuracy before the edit is below `min_effect`: with nothing to lose, the check
  has no power to see an effect.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

from ..edit.edit import Edit
from ..errors import WorkbenchInputError
from ..models.scoring import score_examples
from ..stats import difference_interval, mean_interval
from ..tasks.declared import eval_forms, retain_eval_facts
from ..tasks.prompts import default_forms
from ..tasks.task import subsample_facts

SPLITS = ("forget", "neighbour", "retain_eval")  # what every check measures, in this order
OTHERS = SPLITS[1:]  # what a forget-specific edit spares
MIN_EFFECT = 0.05
VERDICTS = ("specific", "unspecific", "no effect", "inconclusive")
DRAWS = 20  # random draws per budget (the minimum)


def check_examples(task, max_facts: int | None = 200, seed: int = 0) -> dict[str, list]:
    """The held-out examples every check scores: each split's facts (at most `max_facts`,
    `subsample_facts`) in the evaluation forms (every non-multiple-choice form where the task
    has none held out). A split the task lacks (no neighbours) is an empty list."""
    forms = (eval_forms(task) or None) if task.trained is not None else default_forms(task)
    sources = {"forget": task.facts("forget"), "neighbour": task.facts("neighbour"),
               "retain_eval": retain_eval_facts(task)}
    out = {s: task.render_all(subsample_facts(facts, max_facts, seed, s), forms, mcq=False)
           for s, facts in sources.items()}
    if not out["forget"] or not out["retain_eval"]:
        raise WorkbenchInputError(f"task {task.name!r}: a faithfulness check needs forget facts and retain-eval "
                                  f"people in its evaluation forms; it has {len(out['forget'])} forget and "
                                  f"{len(out['retain_eval'])} retain_eval examples")
    return out


def effect(value: float, interval, min_effect: float) -> bool:
    """A drop that is an effect: its whole interval above 0 and its value at least `min_effect`."""
    return interval is not None and interval[0] > 0 and value >= min_effect


def judge(row: dict, min_effect: float = MIN_EFFECT) -> str:
    """The verdict word of a row built by `drops` (module docstring)."""
    iv = row["intervals"]
    others = [s for s in OTHERS if f"{s}_drop" in row]
    forget = iv.get("forget_excess")
    if forget is None or not all(math.isfinite(x) for x in forget) or row.get("forget_before", 1.0) < min_effect:
        return "inconclusive"
    if effect(row["forget_excess"], forget, min_effect) and all(
            iv[f"forget_minus_{s}"][0] > 0 for s in others):
        return "specific"
    if any(effect(row[f"{s}_excess"], iv[f"{s}_excess"], min_effect) for s in others):
        return "unspecific"
    if forget[1] < min_effect:
        return "no effect"
    return "inconclusive"


@dataclass
class FaithRow:
    """One budget of one check: `values` holds, per split, `{split}_before` (accuracy before
    any edit), `{split}_drop`, `{split}_random` (mean drop over the random draws) and
    `{split}_excess` (drop - random); `intervals` their 95% intervals and the differences
    `forget_minus_{split}` of the excesses; `verdict` the word `judge` gives."""
    localiser: str
    kind: str
    budget: float | None  # a fraction of the eligible parameters (None: a count of sites, `n`)
    n: int  # sites edited (weights: scalars)
    params: int  # parameters the edited sites own
    values: dict
    intervals: dict
    verdict: str
    random_overlap: float = 0.0  # mean share of a random draw that is also a top site (0 unless it had to be)
    extra: dict = field(default_factory=dict)

    def __getattr__(self, name):  # row.forget_drop, row.neighbour_excess, ...
        values = self.__dict__.get("values", {})
        if name in values:
            return values[name]
        raise AttributeError(name)

    def as_dict(self) -> dict:
        out = {"localiser": self.localiser, "kind": self.kind, "budget": self.budget, "n": self.n,
               "params": self.params, **self.values, "verdict": self.verdict, "random_overlap": self.random_overlap,
               "intervals": self.intervals, **self.extra}
        for key, (lo, hi) in self.intervals.items():  # printable
            out[f"{key}_95"] = f"[{lo:.3f}, {hi:.3f}]"
        return out


def check_draws(draws: int, budgets: Iterable[float] = ()) -> None:
    """The options every check takes: at least one random draw, budgets in (0, 1]."""
    if draws < 1:
        raise WorkbenchInputError(f"draws={draws}: expected at least one random draw")
    bad = [b for b in budgets if not 0 < b <= 1]
    if bad:
        raise WorkbenchInputError(f"budget {bad[0]!r}: expected a fraction of the parameters in (0, 1]")


def measured(loaded, examples: dict, edit: Edit | None = None) -> dict[str, list[float]]:
    """Per-example correctness (1.0 / 0.0) on every split of `examples`, with `edit` in force
    (none: the model as it is)."""
    def score() -> dict[str, list[float]]:
        return {split: [float(s.correct) for s in score_examples(loaded.model, loaded.tokenizer, exs, 128)]
                for split, exs in examples.items() if exs}
    if edit is None:
        return score()
    with edit.applied(loaded.model):
        return score()


def drops(base: dict, hit: dict, rand: list[dict], examples: dict) -> dict:
    """Per split: accuracy before, the drop of the top edit, the mean drop of the random edits,
    the excess (paired per fact), with 95% intervals over people; and the intervals of the
    forget excess minus each other split's excess (two samples of people)."""
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    values, intervals, excess, people = {}, {}, {}, {}
    for split in SPLITS:
        if split not in base:
            continue
        people[split] = [ex.fact.subject for ex in examples[split]]
        top = [b - a for b, a in zip(base[split], hit[split])]
        rnd = [mean(col) for col in zip(*([b - a for b, a in zip(base[split], r[split])] for r in rand))]
        excess[split] = [t - r for t, r in zip(top, rnd)]
        values |= {f"{split}_before": mean(base[split]), f"{split}_drop": mean(top), f"{split}_random": mean(rnd),
                   f"{split}_excess": mean(excess[split])}
        intervals |= {f"{split}_drop": mean_interval(top, people[split]),
                      f"{split}_random": mean_interval(rnd, people[split]),
                      f"{split}_excess": mean_interval(excess[split], people[split])}
    for split in OTHERS:
        if split in excess:
            intervals[f"forget_minus_{split}"] = difference_interval(excess["forget"], people["forget"],
                                                                     excess[split], people[split])
    return {**values, "intervals": {k: [round(lo, 6), round(hi, 6)] for k, (lo, hi) in intervals.items()}}


def row_of(localiser: str, kind: str, budget: float | None, n: int, params: int, d: dict,
           min_effect: float = MIN_EFFECT, random_overlap: float = 0.0, **extra) -> FaithRow:
    """A `FaithRow` from the output of `drops`, judged; `extra`: more columns (e.g. the sites)."""
    values = {k: v for k, v in d.items() if k != "intervals"}
    return FaithRow(localiser, kind, budget, n, params, values, d["intervals"], judge(d, min_effect),
                    random_overlap, extra)
