"""Causal check of concept vectors (Hong et al. 2024): N(0, σ²) noise on the top value
vectors, as a weight edit; forget and unrelated (retain) accuracy before and after."""
from __future__ import annotations

import torch

from ..edit.edit import Edit
from ..localise.localisation import Localisation
from ..models.arch import resolve
from ..models.readouts import accuracies
from ..sites import NeuronSite


@torch.no_grad()
def concept_noise_check(loaded, task, loc: Localisation, n: int = 10, sigma: float = 0.1,
                        seed: int = 0, max_facts: int = 200) -> dict:
    """Noise on the top-n value vectors: forget and retain accuracy before/after; the
    weights are restored bit-identically afterwards (checked)."""
    model = loaded.model
    sites = [s for s in loc.top(k=n) if isinstance(s, NeuronSite)]
    before = accuracies(loaded, task, max_facts=max_facts)
    gen = torch.Generator().manual_seed(seed)
    noisy: dict[str, torch.Tensor] = {}
    for site in sites:
        ps = resolve(site, model).params[0]  # the value vector (down-projection column)
        w = noisy.setdefault(ps.name, model.get_parameter(ps.name).detach().clone())
        view = w[ps.index]
        w[ps.index] = view + torch.randn(view.shape, generator=gen) * sigma
    originals = {name: model.get_parameter(name).detach().clone() for name in noisy}
    with Edit("noise", noisy).applied(model):
        after = accuracies(loaded, task, max_facts=max_facts)
    restored = all(torch.equal(model.get_parameter(nm), t) for nm, t in originals.items())
    return {"vectors": len(sites), "sigma": sigma, "forget_before": before["forget"],
            "forget_after": after["forget"], "retain_before": before["retain"], "retain_after": after["retain"],
            "forget_drop": before["forget"] - after["forget"], "retain_drop": before["retain"] - after["retain"],
            "restored": restored}
