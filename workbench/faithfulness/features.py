"""Faithfulness of SAE features: clamp the top-N selected features (the `sae-clamp`
operator's intervention) vs N random features of similar firing rate."""
from __future__ import annotations

import random

import torch

from ..edit.ablations import sae_clamp
from ..edit.edit import Edit
from ..errors import WorkbenchInputError
from ..localise.localisation import Localisation
from ..sites import SiteKind
from .criterion import DRAWS, MIN_EFFECT, FaithRow, check_draws, check_examples, drops, measured, row_of


def sae_clamp_check(loaded, task, loc: Localisation, n: int = 20, c: float = 50.0, draws: int = DRAWS,
                    max_facts: int | None = 200, seed: int = 0, neighbours: int = 10,
                    min_effect: float = MIN_EFFECT) -> FaithRow:
    """Clamp the top-N selected features vs N random features of similar firing rate (each
    selected feature's stand-in is drawn from the `neighbours` unselected features closest in
    overall firing rate); drops on the held-out splits (`criterion`), random = mean over `draws`."""
    if loc.kinds != {SiteKind.SAE_FEATURE} or "sae" not in loc.provenance:
        raise WorkbenchInputError(f"the SAE clamp check takes an SAE feature localisation (method 'sae'); "
                                  f"{loc.name!r} gives {loc.kind} sites")
    check_draws(draws)
    if n < 1:
        raise WorkbenchInputError(f"n={n}: expected at least one feature to clamp")
    top = [s.feature for s in loc.top(k=n)]
    hook = loc.sites[0].hook
    examples = check_examples(task, max_facts, seed)

    def clamped(features) -> dict:
        edit = Edit("sae-clamp", interventions=[sae_clamp(loaded.model, loc.provenance["sae"], hook, features, c)])
        return measured(loaded, examples, edit)

    base = measured(loaded, examples)
    hit = clamped(top)
    rate = torch.tensor(loc.provenance["forget_rate"]) + torch.tensor(loc.provenance["retain_rate"])
    chosen = set(top)
    rng = random.Random(seed)
    rand = []
    for _ in range(draws):
        picked: list[int] = []
        for j in top:
            order = (rate - rate[j]).abs().argsort().tolist()
            pool = [i for i in order if i not in chosen and i not in picked][:neighbours]
            picked.append(rng.choice(pool))
        rand.append(clamped(picked))
    return row_of(loc.name, loc.kind, None, n, 0, drops(base, hit, rand, examples), min_effect, c=c)
