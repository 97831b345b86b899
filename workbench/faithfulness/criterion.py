"""The faithfulness criterion, stated once, the row every check reports, and what every check
does: measure accuracy with an edit on, against the same with random edits.

Every drop carries a 95% bootstrap interval over people (`workbench.stats`), and the criterion
is judged twice: `pass` on the point estimates, `resolved` beyond noise, where both of its
comparisons hold for the whole interval: the excess of the forget drop over twice the random
forget drop (paired per forget fact) and the forget drop minus the retain drop (two samples of
people). A `pass` that is not `resolved` is a difference inside the noise: no conclusion."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from ..edit.edit import Edit
from ..errors import WorkbenchInputError
from ..models.scoring import score_examples
from ..stats import difference_interval, mean_interval


def faithful(forget_drop: float, random_forget_drop: float, retain_drop: float) -> bool:
    """The criterion: forget falls at least twice as far as with random sites, and further than retain."""
    return forget_drop >= 2 * random_forget_drop and forget_drop > 0 and retain_drop < forget_drop


def resolved(intervals: dict) -> bool:
    """The criterion beyond noise: the whole interval of the forget drop's excess over twice the
    random drop, and of the forget drop minus the retain drop, lies above 0."""
    return all(intervals.get(k) is not None and intervals[k][0] > 0 for k in ("excess_over_random", "forget_minus_retain"))


@dataclass
class FaithRow:
    """One budget of one check: drops in accuracy (before - after) when the top sites are
    ablated, and the mean drop over random draws of the same kind and size."""
    localiser: str
    kind: str
    budget: float
    n: int
    forget_before: float  # accuracy before any ablation (the drops are from these)
    retain_before: float
    forget_drop: float
    retain_drop: float
    random_forget_drop: float
    random_retain_drop: float
    intervals: dict = field(default_factory=dict)  # name -> [low, high] (see `drops`)

    @property
    def ratio(self) -> float:
        return self.forget_drop / max(self.random_forget_drop, 1e-9)

    @property
    def passed(self) -> bool:
        return faithful(self.forget_drop, self.random_forget_drop, self.retain_drop)

    @property
    def resolved(self) -> bool:
        return resolved(self.intervals)

    def as_dict(self) -> dict:
        return {"localiser": self.localiser, "kind": self.kind, "budget": self.budget, "n": self.n,
                "forget_drop": self.forget_drop, "random_forget_drop": self.random_forget_drop,
                "ratio_vs_random": self.ratio, "retain_drop": self.retain_drop,
                "random_retain_drop": self.random_retain_drop, "forget_before": self.forget_before,
                "retain_before": self.retain_before, "pass": self.passed, "resolved": self.resolved,
                "intervals": self.intervals}


def check_draws(draws: int, budgets: Iterable[float] = ()) -> None:
    """The options every check takes: at least one random draw, budgets in (0, 1]."""
    if draws < 1:
        raise WorkbenchInputError(f"draws={draws}: expected at least one random draw")
    bad = [b for b in budgets if not 0 < b <= 1]
    if bad:
        raise WorkbenchInputError(f"budget {bad[0]!r}: expected a fraction of the sites in (0, 1]")


def measured(loaded, task, examples: dict, edit: Edit | None = None) -> dict[str, list[float]]:
    """Per-example correctness (1.0 / 0.0) on the forget and retain `examples`, with `edit` in
    force (none: the model as it is)."""
    def score() -> dict[str, list[float]]:
        return {split: [float(s.correct) for s in score_examples(loaded.model, loaded.tokenizer, exs, 128)]
                for split, exs in examples.items()}
    if edit is None:
        return score()
    with edit.applied(loaded.model):
        return score()


def drops(base: dict, hit: dict, rand: list[dict], examples: dict) -> dict:
    """Accuracy drops (before - after) of the top edit and their mean over the random edits,
    with 95% intervals over people: of each drop, of the forget drop's excess over twice the
    random forget drop (paired per fact), and of the forget drop minus the retain drop."""
    people = {split: [ex.fact.subject for ex in exs] for split, exs in examples.items()}
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731

    def per_fact(split: str, after: dict) -> list[float]:
        return [b - a for b, a in zip(base[split], after[split])]
    top = {split: per_fact(split, hit) for split in ("forget", "retain")}
    rnd = {split: [mean(col) for col in zip(*(per_fact(split, r) for r in rand))] for split in ("forget", "retain")}
    excess = [t - 2 * r for t, r in zip(top["forget"], rnd["forget"])]
    intervals = {
        "forget_drop": mean_interval(top["forget"], people["forget"]),
        "retain_drop": mean_interval(top["retain"], people["retain"]),
        "random_forget_drop": mean_interval(rnd["forget"], people["forget"]),
        "excess_over_random": mean_interval(excess, people["forget"]),
        "forget_minus_retain": difference_interval(top["forget"], people["forget"], top["retain"], people["retain"]),
    }
    return {"forget_before": mean(base["forget"]), "retain_before": mean(base["retain"]),
            "forget_drop": mean(top["forget"]), "retain_drop": mean(top["retain"]),
            "random_forget_drop": mean(rnd["forget"]), "random_retain_drop": mean(rnd["retain"]),
            "intervals": {k: [round(lo, 6), round(hi, 6)] for k, (lo, hi) in intervals.items()}}


def verdict(d: dict) -> dict:
    """`d` (from `drops`) with the ratio to random and the criterion's verdicts (point and beyond noise)."""
    return {**d, "ratio_vs_random": d["forget_drop"] / max(d["random_forget_drop"], 1e-9),
            "pass": faithful(d["forget_drop"], d["random_forget_drop"], d["retain_drop"]),
            "resolved": resolved(d["intervals"])}
