"""Is a localisation faithful? Ablate its top sites and compare with random sites.

Unit sites (heads, neurons, MLP outputs) are mean-ablated: their activation is replaced by
its mean over retain prompts (every position but the first). Weight localisations zero their
top scalars. SAE features and MoE experts have their own checks (`localise.sae.clamp_check`,
`edit.checks.expert_removal_check`). The same budget of random sites of the same kind (mean of
several draws) is the baseline. A faithful localisation lowers forget accuracy much more than random sites do, and
lowers forget accuracy more than retain accuracy.
"""
from __future__ import annotations

import random
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from ..hooks import hook_session
from ..models.arch import resolve
from ..models.scoring import accuracy, score_examples
from ..sites import Site
from .data import split_examples
from .localisation import Localisation, top_flat, unflatten


def eval_examples(task, max_facts: int | None = 200, forms=None) -> dict[str, list]:
    return {split: split_examples(task, split, max_facts, forms=forms) for split in ("forget", "retain")}


@torch.no_grad()
def accuracies(loaded, task, max_facts: int | None = 200, examples: dict | None = None) -> dict[str, float]:
    examples = examples or eval_examples(task, max_facts)
    return {split: accuracy(score_examples(loaded.model, loaded.tokenizer, exs, 128))
            for split, exs in examples.items()}


def _act_point(site: Site, model):
    r = resolve(site, model)
    if r.module is None:
        raise ValueError(f"site {str(site)!r} has no activation to ablate")
    return r.module, r.io, r.act_index


@torch.no_grad()
def mean_activations(loaded, task, sites: list[Site], max_facts: int = 200) -> dict[tuple, torch.Tensor]:
    """Mean over retain prompts of each activation point the sites use, at every position but
    the first (BOS / attention-sink activations are outliers that would dominate the mean)."""
    points = {(m, io) for m, io, _ in (_act_point(s, loaded.model) for s in sites)}
    exs = eval_examples(task, max_facts)["retain"]
    sums: dict = {}
    count = 0
    tok = loaded.tokenizer
    with hook_session(loaded.model) as hs:
        store: dict = {}
        for m, io in points:
            hs.read(m, io, store, (m, io))
        for ex in exs:
            ids = torch.tensor([tok(ex.prompt)["input_ids"]])
            loaded.model(input_ids=ids)
            for key, act in store.items():
                sums[key] = sums.get(key, 0) + act[0, 1:].sum(0).double()
            count += ids.shape[1] - 1
    return {k: (v / count).float() for k, v in sums.items()}


@contextmanager
def mean_ablated(model, sites: list[Site], means: dict):
    """Scoped: every site's activation slice replaced by its retain mean (the first position
    is left alone, as in `mean_activations`)."""
    groups: dict[tuple, list] = {}
    for s in sites:
        m, io, idx = _act_point(s, model)
        groups.setdefault((m, io), []).append(idx)
    with hook_session(model) as hs:
        for (m, io), slices in groups.items():
            mean = means[(m, io)]
            cols = torch.zeros(mean.shape[-1], dtype=torch.bool)
            for idx in slices:
                if idx:
                    cols[idx[0]] = True
                else:
                    cols[:] = True

            def fn(x, cols=cols, mean=mean):
                x = x.clone()
                x[:, 1:, cols] = mean[cols].to(x.dtype)
                return x
            hs.patch(m, io, fn)
        yield


@contextmanager
def zeroed(model, masks: dict[str, torch.Tensor]):
    """Scoped: masked scalars set to zero, restored bit-identically afterwards."""
    saved = {n: model.get_parameter(n).detach().clone() for n in masks}
    try:
        with torch.no_grad():
            for n, m in masks.items():
                model.get_parameter(n)[m] = 0
        yield
    finally:
        with torch.no_grad():
            for n, t in saved.items():
                model.get_parameter(n).copy_(t)


def faithful(forget_drop: float, random_forget_drop: float, retain_drop: float) -> bool:
    """The criterion: forget falls at least twice as far as with random sites, and further than retain."""
    return forget_drop >= 2 * random_forget_drop and forget_drop > 0 and retain_drop < forget_drop


@dataclass
class FaithRow:
    localiser: str
    kind: str
    budget: float
    n: int
    forget_drop: float
    retain_drop: float
    random_forget_drop: float
    random_retain_drop: float
    forget_before: float  # accuracy before any ablation (the drops are from these)
    retain_before: float

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


def _random_weight_masks(loc: Localisation, n: int, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    flat = torch.rand(loc.n_scalars, generator=gen)
    return unflatten(top_flat(flat, n), loc.weight_scores)


# site kinds whose ablation lives elsewhere (an SAE's latent space; the router's top-k)
_OWN_CHECKS = {"feature": "workbench.localise.sae.clamp_check (features are clamped in the SAE's latent space)",
               "expert": "workbench.edit.checks.expert_removal_check (an expert leaves the router's top-k)"}


def faithfulness(loaded, task, loc: Localisation, budgets=(0.01, 0.05), draws: int = 5,
                 max_facts: int = 200, seed: int = 0, label: str | None = None, progress: bool = False) -> list[FaithRow]:
    """Top sites vs `draws` random draws of the same kind and size, at each budget."""
    from workbench.progress import tqdm

    if loc.kind in _OWN_CHECKS:
        raise ValueError(f"faithfulness by mean ablation takes unit localisations (heads, neurons, MLP outputs) "
                         f"and weight localisations; "
                         f"{loc.name!r} gives {loc.kind} sites: use {_OWN_CHECKS[loc.kind]} instead")
    model = loaded.model
    examples = eval_examples(task, max_facts)
    base = accuracies(loaded, task, examples=examples)
    rows = []
    means = None if loc.kind == "weight" else mean_activations(loaded, task, list(loc.sites), max_facts)
    rng = random.Random(seed)
    for budget in budgets:
        if loc.kind == "weight":
            n = max(1, round(budget * loc.n_scalars))
            top_ctx = lambda: zeroed(model, loc.weight_mask(k=n))  # noqa: E731
            rand_ctx = lambda d: zeroed(model, _random_weight_masks(loc, n, seed * 1000 + d))  # noqa: E731
        else:
            n = max(1, round(budget * len(loc.sites)))
            chosen = loc.top(k=n)
            draws_sites = [rng.sample(list(loc.sites), n) for _ in range(draws)]
            top_ctx = lambda: mean_ablated(model, chosen, means)  # noqa: E731
            rand_ctx = lambda d: mean_ablated(model, draws_sites[d], means)  # noqa: E731
        with top_ctx():
            top = accuracies(loaded, task, examples=examples)
        rand = []
        for d in tqdm(range(draws), desc=f"random x{draws} @ {budget:g}", disable=not progress):
            with rand_ctx(d):
                rand.append(accuracies(loaded, task, examples=examples))
        mean = lambda split: sum(r[split] for r in rand) / len(rand)  # noqa: E731
        rows.append(FaithRow(label or loc.name, loc.kind, budget, n,
                             base["forget"] - top["forget"], base["retain"] - top["retain"],
                             base["forget"] - mean("forget"), base["retain"] - mean("retain"),
                             base["forget"], base["retain"]))
    return rows


# -- agreement --------------------------------------------------------------------------
def _ranks(x: torch.Tensor) -> torch.Tensor:
    """Average ranks (ties share their mean rank)."""
    order = torch.argsort(x, stable=True)
    ranks = torch.empty_like(x, dtype=torch.float64)
    ranks[order] = torch.arange(len(x), dtype=torch.float64)
    for v in torch.unique(x):
        idx = (x == v).nonzero().flatten()
        if len(idx) > 1:
            ranks[idx] = ranks[idx].mean()
    return ranks


def spearman(a, b) -> float:
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = float(ra.norm() * rb.norm())
    return float((ra * rb).sum()) / denom if denom > 0 else float("nan")


def agreement(locs: dict[str, Localisation], k: int = 3, fraction: float = 0.05) -> list[dict]:
    """Pairwise agreement at the shared (layer, component) granularity. Each localisation
    becomes its selection density per cell (`Localisation.coarse_density`); pairs get the
    Jaccard index of their k densest cells and the Spearman correlation of the densities
    over every cell either one covers (cells one of them does not cover count as 0)."""
    dens = {name: loc.coarse_density(fraction) for name, loc in locs.items()}
    cells = sorted({c for d in dens.values() for c in d}, key=lambda c: (-1 if c[0] is None else c[0], c[1]))

    def topk(name):
        v = torch.tensor([dens[name].get(c, 0.0) for c in cells])
        return {cells[i] for i in torch.argsort(-v, stable=True)[:k].tolist() if v[i] > 0}

    rows = []
    names = list(locs)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ta, tb = topk(a), topk(b)
            shared = [c for c in cells if c in dens[a] or c in dens[b]]
            va = [dens[a].get(c, 0.0) for c in shared]
            vb = [dens[b].get(c, 0.0) for c in shared]
            rows.append({"a": a, "b": b, f"jaccard@{k}": len(ta & tb) / len(ta | tb) if ta | tb else float("nan"),
                         "spearman": spearman(va, vb)})
    return rows
