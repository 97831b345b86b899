"""Faithfulness of an MoE expert localisation. An expert is not an activation slice that can
be mean-ablated: it is removed from its router's top-k (the `remove-experts` operator), so this
check lives with the operators rather than in `workbench.localise.faithfulness`."""
from __future__ import annotations

import random

import torch

from ..localise.faithfulness import accuracies, eval_examples, faithful
from ..localise.localisation import Localisation
from ..sites import ExpertSite
from .operators import apply_operator


def expert_removal_check(loaded, task, loc: Localisation, draws: int = 5, max_facts: int | None = 200,
                         seed: int = 0) -> dict:
    """Remove the top expert (k = 1) vs `draws` random experts of the other layers: drops in
    forget and retain accuracy; random = the mean over the draws."""
    if loc.kind != "expert":
        raise ValueError(f"expert_removal_check takes an expert localisation; {loc.name!r} gives {loc.kind} sites")
    examples = eval_examples(task, max_facts)
    base = accuracies(loaded, task, examples=examples)
    top = loc.top(k=1)[0]

    def removed(site) -> dict:
        one = Localisation("expert", (site,), torch.ones(1), {"localiser": "fixed"})
        with apply_operator(loaded, one, task, "remove-experts", {"k": 1}, progress=False).applied(loaded.model):
            return accuracies(loaded, task, examples=examples)

    cfg = loaded.model.config
    others = [ExpertSite(L, e) for L in range(cfg.num_hidden_layers) if L != top.layer
              for e in range(cfg.num_local_experts)]
    picked = random.Random(seed).sample(others, min(draws, len(others)))
    hit, rand = removed(top), [removed(s) for s in picked]
    mean = lambda split: sum(base[split] - a[split] for a in rand) / len(rand)  # noqa: E731
    out = {"site": str(top), "n": 1, "forget_drop": base["forget"] - hit["forget"],
           "retain_drop": base["retain"] - hit["retain"], "random_forget_drop": mean("forget"),
           "random_retain_drop": mean("retain"), "random_sites": [str(s) for s in picked]}
    out["ratio_vs_random"] = out["forget_drop"] / max(out["random_forget_drop"], 1e-9)
    out["pass"] = faithful(out["forget_drop"], out["random_forget_drop"], out["retain_drop"])
    return out
