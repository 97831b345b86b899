"""Faithfulness of an MoE expert localisation. An expert is not an activation slice that can
be mean-ablated: it is removed from its router's top-k (the `remove-experts` operator's
intervention), against random experts of the other layers."""
from __future__ import annotations

import random

from ..edit.ablations import expert_removal
from ..edit.edit import Edit
from ..errors import WorkbenchInputError
from ..localise.localisation import Localisation
from ..models.arch import table_for
from ..sites import ExpertSite, SiteKind
from .ablation import site_params
from .criterion import DRAWS, MIN_EFFECT, FaithRow, check_draws, check_examples, drops, measured, row_of


def expert_removal_check(loaded, task, loc: Localisation, draws: int = DRAWS, max_facts: int | None = 200,
                         seed: int = 0, min_effect: float = MIN_EFFECT) -> FaithRow:
    """Remove the top expert (k = 1) vs `draws` random experts of the other layers (drawn
    without replacement while there are enough, then again): drops on the held-out splits
    (`criterion`); random = the mean over the draws."""
    if loc.kinds != {SiteKind.EXPERT}:
        raise WorkbenchInputError(f"expert_removal_check takes an expert localisation; {loc.name!r} gives "
                                  f"{loc.kind} sites")
    check_draws(draws)
    examples = check_examples(task, max_facts, seed)
    base = measured(loaded, examples)
    top = loc.top(k=1)[0]

    def removed(site) -> dict:
        return measured(loaded, examples, Edit("remove-experts", interventions=expert_removal(loaded.model, [site])))

    sizes = table_for(loaded.model).config_sizes(loaded.model.config)
    n_layers, n_experts = sizes["n_layers"], sizes["n_experts"]
    others = [ExpertSite(L, e) for L in range(n_layers) if L != top.layer for e in range(n_experts)]
    rng = random.Random(seed)
    picked = [s for start in range(0, draws, len(others)) for s in rng.sample(others, min(draws - start, len(others)))]
    measured_once = {s: removed(s) for s in dict.fromkeys(picked)}  # an expert drawn twice is measured once
    hit, rand = removed(top), [measured_once[s] for s in picked]
    params = site_params(loaded.model, loc, top)
    return row_of(loc.name, loc.kind, None, 1, params, drops(base, hit, rand, examples), min_effect,
                  site=str(top), random_sites=[str(s) for s in picked])

