"""How much do localisers agree? At the shared (layer, component) granularity, whatever
their site kinds: rank correlation of selection densities and overlap of the densest cells."""
from __future__ import annotations

import math

import torch

from .localisation import Localisation


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


def agreement_matrix(locs: dict[str, Localisation], fraction: float = 0.05) -> dict:
    """{names, spearman}: the Spearman matrix of `agreement`, for heatmaps."""
    names = list(locs)
    matrix = [[1.0 if a == b else None for b in names] for a in names]
    if len(names) > 1:
        for r in agreement(locs, fraction=fraction):
            i, j = names.index(r["a"]), names.index(r["b"])
            v = r["spearman"]
            matrix[i][j] = matrix[j][i] = None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
    return {"names": names, "spearman": matrix}
