"""Faithfulness by ablation: the top sites of a unit localisation (heads, neurons, component
outputs) are mean-ablated (their activation replaced by its mean over retain prompts, at every
position but the first); a weight localisation's top scalars are zeroed. The same budget of
random sites of the same kind (mean of several draws) is the baseline. Both ablations are
`ablate`-operator edits (`workbench.edit.ablations`), applied and reverted exactly."""
from __future__ import annotations

import random

import torch

from ..edit.ablations import ablation_points, unit_ablation, zeroed_weights
from ..edit.edit import Edit
from ..errors import WorkbenchInputError
from ..localise.localisation import Localisation, top_flat, unflatten
from ..models.readouts import mean_activations
from ..progress import tqdm
from ..sites import SiteKind
from ..tasks.prompts import eval_examples
from .criterion import FaithRow, check_draws, drops, measured

UNIT = frozenset({SiteKind.HEAD, SiteKind.NEURON, SiteKind.HOOK})


def _random_weight_masks(loc: Localisation, n: int, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    flat = torch.rand(loc.n_scalars, generator=gen)
    return unflatten(top_flat(flat, n), loc.weight_scores)


def ablation_check(loaded, task, loc: Localisation, budgets=(0.01, 0.05), draws: int = 5,
                   max_facts: int = 200, seed: int = 0, label: str | None = None,
                   progress: bool = False) -> list[FaithRow]:
    """Top sites vs `draws` random draws of the same kind and size, at each budget."""
    if not (loc.kinds <= UNIT or loc.kinds == {SiteKind.WEIGHT}):
        raise WorkbenchInputError(f"ablation faithfulness takes unit localisations (heads, neurons, component "
                                  f"outputs) and weight localisations; {loc.name!r} gives {loc.kind} sites "
                                  f"(workbench.faithfulness.check picks the check for every kind)")
    check_draws(draws, budgets)
    model = loaded.model
    examples = eval_examples(task, max_facts)
    base = measured(loaded, task, examples)
    weights = loc.kinds == {SiteKind.WEIGHT}
    means = None if weights else mean_activations(loaded, task, list(ablation_points(model, list(loc.sites))), max_facts)

    def units(sites) -> Edit:
        return Edit("ablate", interventions=unit_ablation(loaded, task, sites, "mean", means=means,
                                                          positions="after_first"))

    rows = []
    rng = random.Random(seed)
    for budget in budgets:
        if weights:
            n = max(1, round(budget * loc.n_scalars))
            top = Edit("ablate", zeroed_weights(model, loc.weight_mask(k=n)))
            rand_edit = lambda d: Edit("ablate", zeroed_weights(model, _random_weight_masks(loc, n, seed * 1000 + d)))  # noqa: E731
        else:
            n = max(1, round(budget * len(loc.sites)))
            top = units(loc.top(k=n))
            draws_sites = [rng.sample(list(loc.sites), n) for _ in range(draws)]
            rand_edit = lambda d: units(draws_sites[d])  # noqa: E731
        hit = measured(loaded, task, examples, top)
        rand = [measured(loaded, task, examples, rand_edit(d))
                for d in tqdm(range(draws), desc=f"random x{draws} @ {budget:g}", disable=not progress)]
        rows.append(FaithRow(label or loc.name, loc.kind, budget, n, **drops(base, hit, rand, examples)))
    return rows
