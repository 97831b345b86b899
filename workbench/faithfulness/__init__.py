"""Is a localisation faithful? Edit its top sites with the operators and compare with random
sites of the same kind, on the held-out forget, neighbour and retain-eval sets, with intervals
over people and a verdict word per budget (`criterion`: specific, unspecific, no effect,
inconclusive).

`check(loaded, task, loc)` picks the check from the localisation's site kinds:
- heads, neurons, component outputs: mean ablation; weights: zeroing (`ablation_check`;
  budgets count parameters; norm gains, embeddings and the unembedding left out by default);
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
from .ablation import ablation_check, eligible_weights, excluded_share
from .criterion import DRAWS, MIN_EFFECT, SPLITS, VERDICTS, FaithRow, check_examples, judge
from .experts import expert_removal_check
from .features import sae_clamp_check
from .noise import concept_noise_check

__all__ = ["DRAWS", "MIN_EFFECT", "SPLITS", "TABLE_RUNS", "VERDICTS", "CheckTable", "FaithRow", "ablation_check",
           "check", "check_examples", "concept_noise_check", "eligible_weights", "excluded_share",
           "expert_removal_check", "judge", "sae_clamp_check"]


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
    """One check's result: a title, its rows, the columns worth showing and notes."""
    title: str
    rows: list[dict]
    columns: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# per split: the drop, the random drop and the excess's interval; then the verdict
_DROP_COLUMNS = [c for s in SPLITS for c in (f"{s}_drop", f"{s}_random", f"{s}_excess_95")] + ["verdict"]
_ABLATION_COLUMNS = ["budget", "n", "params", *_DROP_COLUMNS, "random_overlap"]
LEGEND = (f"drops in accuracy (before - after) on held-out forget / neighbour / retain_eval facts (evaluation forms); "
          f"*_random: the mean drop of random sites of the same kind, stratified, excluding the top sites; "
          f"*_excess_95: 95% interval over people of drop - random; verdict: specific (forget excess an effect "
          f">= {MIN_EFFECT} and above both others' excess), unspecific (neighbour or retain_eval falls by an effect "
          f"beyond random sites), no effect (forget excess below {MIN_EFFECT} for its whole interval), inconclusive")


def check(loaded, task, loc: Localisation, budgets=(0.01, 0.05), draws: int = DRAWS, max_facts: int = 200,
          seed: int = 0, progress: bool = False, all_weights: bool = False,
          min_effect: float = MIN_EFFECT) -> list[CheckTable]:
    """Every faithfulness check that applies to `loc`, chosen by its site kinds."""
    if loc.kinds == {SiteKind.SAE_FEATURE}:
        rows = [sae_clamp_check(loaded, task, loc, n=n, draws=draws, max_facts=max_facts, seed=seed,
                                min_effect=min_effect).as_dict() for n in (10, 20)]
        return [CheckTable("clamp the top-N SAE features vs N random features of similar firing rate", rows,
                           ["n", "c", *_DROP_COLUMNS], [LEGEND])]
    if loc.kinds == {SiteKind.EXPERT}:
        row = expert_removal_check(loaded, task, loc, draws=draws, max_facts=max_facts, seed=seed,
                                   min_effect=min_effect).as_dict()
        return [CheckTable("remove the top expert from its router's top-k vs random experts of other layers", [row],
                           ["site", *_DROP_COLUMNS], [LEGEND])]
    rows = [r.as_dict() for r in ablation_check(loaded, task, loc, budgets=budgets, draws=draws, max_facts=max_facts,
                                                seed=seed, progress=progress, all_weights=all_weights,
                                                min_effect=min_effect)]
    notes = [LEGEND]
    if loc.kinds == {SiteKind.WEIGHT}:
        scope = "every weight" if all_weights else "norm gains, embeddings and unembedding left out"
        notes.append(f"budget: a fraction of the eligible weights ({scope}); the top 1% over every scored weight "
                     f"had {excluded_share(loaded.model, loc):.1%} of its scalars in the left-out tensors")
    out = [CheckTable(f"top sites vs {draws} random draws of the same kind and parameters (units mean-ablated, "
                      f"weights zeroed; budget: a fraction of the parameters)", rows, _ABLATION_COLUMNS, notes)]
    if loc.name == "concept" and loc.kinds == {SiteKind.NEURON}:
        res = concept_noise_check(loaded, task, loc, n=20, sigma=0.1, seed=seed, max_facts=max_facts)
        out.append(CheckTable("causal validation: N(0, 0.1^2) noise on the top 20 value vectors, weights restored "
                              "after", [res], ["vectors", "forget_before", "forget_after", "retain_before",
                                               "retain_after", "forget_drop", "retain_drop", "restored"]))
    return out
