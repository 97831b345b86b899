"""Faithfulness by ablation: the top sites of a unit localisation (heads, neurons, component
outputs) are mean-ablated (their activation replaced by its mean over the train view's retain
prompts, at every position but the first); a weight localisation's top scalars are zeroed. Both
are `ablate`-operator edits (`workbench.edit.ablations`), applied and reverted exactly.

**Budgets count parameters**: a fraction of the model's *eligible* parameters (every weight
but the norm gains, the embeddings and the unembedding, `eligible_weights`). Unit sites are
taken whole in rank order until the parameters they own reach the budget (the last one may
overshoot: one MLP output owns a whole MLP, and the row says how many parameters it took).

**The random baseline** (`DRAWS` draws by default) has the same site kind and the same
parameters, stratified and excluding the top sites:
- units: for each top site, a random non-top site of the same kind, layer and component; where
  that stratum has none left, of the same kind and component in another layer; then of the same
  kind; only then a top site (counted in `random_overlap`);
- weights: in each tensor, as many random non-top scalars as the top took there; a tensor with
  too few left is made up from non-top scalars of the other eligible tensors, then (budgets over
  half) from top scalars (counted in `random_overlap`).

Weight ablations leave out the norm gains (near 1, they dominate any magnitude ranking), the
embeddings and the unembedding, unless `all_weights=True`.
"""
from __future__ import annotations

import random
from collections import defaultdict

import torch

from ..edit.ablations import ablation_points, unit_ablation, zeroed_weights
from ..edit.edit import Edit
from ..errors import WorkbenchInputError
from ..localise.localisation import Localisation, top_flat
from ..models.arch import weight_sites
from ..models.readouts import mean_activations
from ..progress import tqdm
from ..sites import Site, SiteKind, coarse
from ..tasks.declared import train_view
from .criterion import DRAWS, MIN_EFFECT, FaithRow, check_draws, check_examples, drops, measured, row_of

UNIT = frozenset({SiteKind.HEAD, SiteKind.NEURON, SiteKind.HOOK})
EXCLUDED_COMPONENTS = frozenset({"ln", "embed", "unembed"})  # norm gains, embeddings, unembedding


def eligible_weights(model, all_weights: bool = False) -> dict[str, int]:
    """HF parameter name -> scalars, of the weights a budget counts and a weight ablation may
    zero: every weight tensor of the site grammar but the norm gains, the embeddings and the
    unembedding (all of them with `all_weights`). Parameters outside the grammar are left out."""
    out: dict[str, int] = {}
    for site, ps in weight_sites(model):
        if all_weights or site.component not in EXCLUDED_COMPONENTS:
            out[ps.name] = out.get(ps.name, 0) + ps.view(model).numel()
    return out


def excluded_share(model, loc: Localisation, fraction: float = 0.01) -> float:
    """The share of a weight localisation's top `fraction` of scalars (over every scored
    weight) that lies in the tensors a weight ablation leaves out by default."""
    kept = eligible_weights(model)
    mask = loc.weight_mask(fraction=fraction)
    total = sum(int(m.sum()) for m in mask.values())
    outside = sum(int(m.sum()) for name, m in mask.items() if name not in kept)
    return outside / max(total, 1)


def site_params(model, loc: Localisation, site: Site) -> int:
    try:
        return loc.site_params(model, site)
    except WorkbenchInputError:  # a site that owns no weights (a residual stream)
        return 0


def _units_by_params(model, loc: Localisation, limit: float) -> list[Site]:
    """Whole sites in rank order until their parameters reach `limit` (at least one site)."""
    chosen, used = [], 0
    for site, _ in loc.ranked():
        if chosen and used >= limit:
            break
        chosen.append(site)
        used += site_params(model, loc, site)
    return chosen


def _stratum(site: Site) -> tuple:
    layer, comp = coarse(site)
    return (site.kind, layer, comp)


def random_units(sites: list[Site], top: list[Site], rng: random.Random) -> tuple[list[Site], int]:
    """One random draw matching `top` site by site (module docstring); returns the draw and how
    many of its sites are top sites (only when every fallback ran out)."""
    chosen = set(top)
    used: set[Site] = set()
    levels = (lambda s: _stratum(s), lambda s: (s.kind, coarse(s)[1]), lambda s: s.kind)
    pools = [defaultdict(list) for _ in levels]
    for s in sites:
        if s not in chosen:
            for pool, key in zip(pools, levels):
                pool[key(s)].append(s)
    out, overlap = [], 0
    for site in top:
        pick = None
        for pool, key in zip(pools, levels):
            free = [s for s in pool.get(key(site), ()) if s not in used]
            if free:
                pick = rng.choice(free)
                break
        if pick is None:  # nothing of its kind left outside the top: a top site of the same kind
            pick = rng.choice([s for s in top if s.kind == site.kind and s not in used] or [site])
            overlap += 1
        used.add(pick)
        out.append(pick)
    return out, overlap


def top_weight_masks(loc: Localisation, n: int, names: dict[str, int]) -> dict[str, torch.Tensor]:
    """The top `n` scalars of a weight localisation among the tensors `names` (full-shape masks)."""
    scored = {name: loc.weight_scores[name] for name in names if name in loc.weight_scores}
    flat = torch.cat([t.reshape(-1).float() for t in scored.values()])
    mask, out, start = top_flat(flat, n), {}, 0
    for name, t in scored.items():
        out[name] = mask[start : start + t.numel()].reshape(t.shape)
        start += t.numel()
    return out


def random_weight_masks(top: dict[str, torch.Tensor], gen: torch.Generator) -> tuple[dict[str, torch.Tensor], int]:
    """One random draw matching `top` tensor by tensor (module docstring); returns the masks
    and how many of their scalars are top scalars."""
    out, deficit = {}, 0
    for name, m in top.items():
        flat = m.reshape(-1)
        k = int(flat.sum())
        free = (~flat).nonzero().flatten()
        take = min(k, free.numel())
        r = torch.zeros_like(flat)
        r[free[torch.randperm(free.numel(), generator=gen)[:take]]] = True
        out[name], deficit = r, deficit + k - take
    overlap = 0
    for source in ("free", "top"):  # made up elsewhere: first from scalars no mask holds, then from top ones
        if deficit <= 0:
            break
        names = list(out)
        pool = torch.cat([(~out[n] & ~top[n].reshape(-1)) if source == "free" else (top[n].reshape(-1) & ~out[n])
                          for n in names]).nonzero().flatten()
        picked = pool[torch.randperm(pool.numel(), generator=gen)[:deficit]]
        sizes = torch.tensor([0] + [out[n].numel() for n in names]).cumsum(0)
        for i, name in enumerate(names):
            local = picked[(picked >= sizes[i]) & (picked < sizes[i + 1])] - sizes[i]
            out[name][local] = True
        deficit -= picked.numel()
        overlap += picked.numel() if source == "top" else 0
    return {n: out[n].reshape(top[n].shape) for n in out}, overlap


def ablation_check(loaded, task, loc: Localisation, budgets=(0.01, 0.05), draws: int = DRAWS,
                   max_facts: int = 200, seed: int = 0, label: str | None = None, progress: bool = False,
                   all_weights: bool = False, min_effect: float = MIN_EFFECT) -> list[FaithRow]:
    """Top sites vs `draws` random draws of the same kind and parameters, at each budget (a
    fraction of the eligible parameters)."""
    if not (loc.kinds <= UNIT or loc.kinds == {SiteKind.WEIGHT}):
        raise WorkbenchInputError(f"ablation faithfulness takes unit localisations (heads, neurons, component "
                                  f"outputs) and weight localisations; {loc.name!r} gives {loc.kind} sites "
                                  f"(workbench.faithfulness.check picks the check for every kind)")
    check_draws(draws, budgets)
    model = loaded.model
    examples = check_examples(task, max_facts, seed)
    base = measured(loaded, examples)
    weights = loc.kinds == {SiteKind.WEIGHT}
    names = eligible_weights(model, all_weights)
    total = sum(names.values())
    means = None if weights else mean_activations(loaded, train_view(task),
                                                  list(ablation_points(model, list(loc.sites))), max_facts)

    def units(sites) -> Edit:
        return Edit("ablate", interventions=unit_ablation(loaded, task, sites, "mean", means=means,
                                                          positions="after_first"))

    rows = []
    rng, gen = random.Random(seed), torch.Generator().manual_seed(seed)
    for budget in budgets:
        if weights:
            n = max(1, round(budget * sum(loc.weight_scores[k].numel() for k in names if k in loc.weight_scores)))
            top_masks = top_weight_masks(loc, n, names)
            top, params = Edit("ablate", zeroed_weights(model, top_masks)), n
            draws_masks = [random_weight_masks(top_masks, gen) for _ in range(draws)]
            rand_edit = lambda d: Edit("ablate", zeroed_weights(model, draws_masks[d][0]))  # noqa: E731
            overlap = sum(o for _, o in draws_masks) / (draws * n)
        else:
            chosen = _units_by_params(model, loc, budget * total)
            n, params = len(chosen), sum(site_params(model, loc, s) for s in chosen)
            top = units(chosen)
            draws_sites = [random_units(list(loc.sites), chosen, rng) for _ in range(draws)]
            rand_edit = lambda d: units(draws_sites[d][0])  # noqa: E731
            overlap = sum(o for _, o in draws_sites) / (draws * n)
        hit = measured(loaded, examples, top)
        rand = [measured(loaded, examples, rand_edit(d))
                for d in tqdm(range(draws), desc=f"random x{draws} @ {budget:g}", disable=not progress)]
        rows.append(row_of(label or loc.name, loc.kind, budget, n, params, drops(base, hit, rand, examples),
                           min_effect, random_overlap=overlap))
    return rows
