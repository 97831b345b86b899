"""Is a localisation faithful? Edit its top sites with the operators and compare with random
sites of the same kind.

`check(loaded, task, loc)` picks the check from the localisation's site kinds:
- heads, neurons, component outputs: mean ablation (`ablation_check`); weights: zeroing;
- SAE features: the conditional clamp against rate-matched random features (`sae_clamp_check`);
- MoE experts: removal from the router's top-k against random experts (`expert_removal_check`);
- localisations of the concept localiser also get their paper's noise check
  (`concept_noise_check`).
Each check is built on the operators' own interventions (`workbench.edit.ablations`), so there
is one ablation engine.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..localise.localisation import Localisation
from ..sites import SiteKind
from .ablation import ablation_check
from .criterion import FaithRow, faithful
from .experts import expert_removal_check
from .features import sae_clamp_check
from .noise import concept_noise_check

__all__ = ["TABLE_RUNS", "CheckTable", "FaithRow", "ablation_check", "check", "concept_noise_check", "expert_removal_check",
           "faithful", "sae_clamp_check"]


# label -> (localiser, options): the localisers whose faithfulness on the testbed the tests
# (tests/integration/test_faithfulness.py) and scripts/faithfulness_intervals.py measure
TABLE_RUNS = {
    "selective": ("selective", {}),
    "circuits[oct,neuron]": ("circuits", {"mode": "oct", "nodes": "neuron"}),
    "circuits[flu]": ("circuits", {"mode": "flu"}),
    "circuits[oct]": ("circuits", {}),
    "salun": ("salun", {}),
    "wagle": ("wagle", {}),
    "concept": ("concept", {}),
}


@dataclass
class CheckTable:
    """One check's result: a title, its rows and the columns worth showing."""
    title: str
    rows: list[dict]
    columns: list[str] = field(default_factory=list)


_DROP_COLUMNS = ["forget_drop", "forget_drop_95", "random_forget_drop", "ratio_vs_random", "retain_drop",
                 "random_retain_drop", "pass", "resolved"]
_ABLATION_COLUMNS = ["budget", "n", *_DROP_COLUMNS]


def _with_interval(row: dict) -> dict:
    """The row with its forget drop's 95% interval as a printable column."""
    lo, hi = row["intervals"]["forget_drop"]
    return {**row, "forget_drop_95": f"[{lo:.3f}, {hi:.3f}]"}


def check(loaded, task, loc: Localisation, budgets=(0.01, 0.05), draws: int = 5, max_facts: int = 200,
          seed: int = 0, progress: bool = False) -> list[CheckTable]:
    """Every faithfulness check that applies to `loc`, chosen by its site kinds."""
    if loc.kinds == {SiteKind.SAE_FEATURE}:
        rows = [_with_interval(sae_clamp_check(loaded, task, loc, n=n, draws=draws, max_facts=max_facts, seed=seed))
                for n in (10, 20)]
        return [CheckTable("clamp the top-N SAE features vs N random features of similar firing rate", rows,
                           ["n", "c", *_DROP_COLUMNS])]
    if loc.kinds == {SiteKind.EXPERT}:
        row = _with_interval(expert_removal_check(loaded, task, loc, draws=draws, max_facts=max_facts, seed=seed))
        return [CheckTable("remove the top expert from its router's top-k vs random experts of other layers", [row],
                           ["site", *_DROP_COLUMNS])]
    rows = [_with_interval(r.as_dict()) for r in ablation_check(loaded, task, loc, budgets=budgets, draws=draws,
                                                  max_facts=max_facts, seed=seed, progress=progress)]
    out = [CheckTable("top sites vs random sites of the same kind (drops in accuracy; units mean-ablated, "
                      "weights zeroed; 95% intervals over people; resolved: the criterion holds beyond them)",
                      rows, _ABLATION_COLUMNS)]
    if loc.name == "concept" and loc.kinds == {SiteKind.NEURON}:
        res = concept_noise_check(loaded, task, loc, n=20, sigma=0.1, seed=seed, max_facts=max_facts)
        out.append(CheckTable("causal validation: N(0, 0.1^2) noise on the top 20 value vectors, weights restored "
                              "after", [res], ["vectors", "forget_before", "forget_after", "retain_before",
                                               "retain_after", "forget_drop", "retain_drop", "restored"]))
    return out
