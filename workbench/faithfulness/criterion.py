"""The faithfulness criterion, stated once, the row every check reports, and what every check
does: measure accuracy with an edit on, against the same with random edits."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from ..edit.edit import Edit
from ..errors import WorkbenchInputError
from ..models.readouts import accuracies


def faithful(forget_drop: float, random_forget_drop: float, retain_drop: float) -> bool:
    """The criterion: forget falls at least twice as far as with random sites, and further than retain."""
    return forget_drop >= 2 * random_forget_drop and forget_drop > 0 and retain_drop < forget_drop


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

    @property
    def ratio(self) -> float:
        return self.forget_drop / max(self.random_forget_drop, 1e-9)

    @property
    def passed(self) -> bool:
        return faithful(self.forget_drop, self.random_forget_drop, self.retain_drop)

    def as_dict(self) -> dict:
        return {"localiser": self.localiser, "kind": self.kind, "budget": self.budget, "n": self.n,
                "forget_drop": self.forget_drop, "random_forget_drop": self.random_forget_drop,
                "ratio_vs_random": self.ratio, "retain_drop": self.retain_drop,
                "random_retain_drop": self.random_retain_drop, "forget_before": self.forget_before,
                "retain_before": self.retain_before, "pass": self.passed}


def check_draws(draws: int, budgets: Iterable[float] = ()) -> None:
    """The options every check takes: at least one random draw, budgets in (0, 1]."""
    if draws < 1:
        raise WorkbenchInputError(f"draws={draws}: expected at least one random draw")
    bad = [b for b in budgets if not 0 < b <= 1]
    if bad:
        raise WorkbenchInputError(f"budget {bad[0]!r}: expected a fraction of the sites in (0, 1]")


def measured(loaded, task, examples: dict, edit: Edit | None = None) -> dict[str, float]:
    """Forget and retain accuracy on `examples`, with `edit` in force (none: the model as it is)."""
    if edit is None:
        return accuracies(loaded, task, examples=examples)
    with edit.applied(loaded.model):
        return accuracies(loaded, task, examples=examples)


def drops(base: dict, hit: dict, rand: list[dict]) -> dict[str, float]:
    """Accuracy drops (before - after) of the top edit, and their mean over the random edits."""
    mean = lambda split: sum(base[split] - r[split] for r in rand) / len(rand)  # noqa: E731
    return {"forget_before": base["forget"], "retain_before": base["retain"],
            "forget_drop": base["forget"] - hit["forget"], "retain_drop": base["retain"] - hit["retain"],
            "random_forget_drop": mean("forget"), "random_retain_drop": mean("retain")}


def verdict(d: dict) -> dict:
    """`d` (from `drops`) with the ratio to random and the criterion's verdict."""
    return {**d, "ratio_vs_random": d["forget_drop"] / max(d["random_forget_drop"], 1e-9),
            "pass": faithful(d["forget_drop"], d["random_forget_drop"], d["retain_drop"])}
