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
from ..tasks.prompts import eval_examples
from .criterion import check_draws, drops, measured, verdict


def expert_removal_check(loaded, task, loc: Localisation, draws: int = 5, max_facts: int | None = 200,
                         seed: int = 0) -> dict:
    """Remove the top expert (k = 1) vs `draws` random experts of the other layers: drops in
    forget and retain accuracy; random = the mean over the draws."""
    if loc.kinds != {SiteKind.EXPERT}:
        raise WorkbenchInputError(f"expert_removal_check takes an expert localisation; {loc.name!r} gives "
                                  f"{loc.kind} sites")
    check_draws(draws)
    examples = eval_examples(task, max_facts)
    base = measured(loaded, task, examples)
    top = loc.top(k=1)[0]

    def removed(site) -> dict:
        return measured(loaded, task, examples, Edit("remove-experts", interventions=expert_removal(loaded.model, [site])))

    sizes = table_for(loaded.model).config_sizes(loaded.model.config)
    n_layers, n_experts = sizes["n_layers"], sizes["n_experts"]
    others = [ExpertSite(L, e) for L in range(n_layers) if L != top.layer for e in range(n_experts)]
    picked = random.Random(seed).sample(others, min(draws, len(others)))
    hit, rand = removed(top), [removed(s) for s in picked]
    return {"site": str(top), "n": 1, **verdict(drops(base, hit, rand, examples)), "random_sites": [str(s) for s in picked]}
