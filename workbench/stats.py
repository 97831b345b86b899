"""Intervals for the workbench's headlines: a percentile bootstrap over clusters (people).

Facts about one person are not independent (a model that knows a person tends to know all of
their facts), so every interval resamples *people* with replacement and takes all of each drawn
person's items: the cluster bootstrap. `cluster_bootstrap` is the engine; `mean_interval`
(an accuracy) and `auc_interval` (a membership AUC) are the two statistics the probes need.
Intervals are 95% percentile intervals of `DRAWS` resamples drawn from a fixed seed, so the
same inputs give the same interval.
"""
from __future__ import annotations

import math
import random
from typing import Callable, Hashable, Sequence

DRAWS = 1000
LEVEL = 0.95


def cluster_bootstrap(clusters: Sequence[Hashable], statistic: Callable[[list[int]], float],
                      draws: int = DRAWS, level: float = LEVEL, seed: int = 0,
                      strata: Sequence[Hashable] | None = None) -> tuple[float, float]:
    """Percentile interval of `statistic(indices)` over resamples of the distinct `clusters`:
    each resample draws as many clusters as there are, with replacement, and passes the
    indices of every item of every drawn cluster (a cluster drawn twice appears twice). With
    `strata` (one label per item, constant within a cluster), clusters are resampled within
    each stratum, so every stratum keeps its number of clusters (two independent samples, e.g.
    forget people and retain people). Resamples whose statistic is not finite (e.g. an AUC
    without non-members) are skipped; an interval needs at least half of the draws and two
    clusters in every stratum, else it is (nan, nan)."""
    if not 0 < level < 1:
        raise ValueError(f"level={level}: expected a fraction in (0, 1)")
    strata = [None] * len(clusters) if strata is None else list(strata)
    if len(strata) != len(clusters):
        raise ValueError(f"{len(strata)} strata labels but {len(clusters)} items")
    groups: dict[Hashable, dict[Hashable, list[int]]] = {}
    for i, (c, st) in enumerate(zip(clusters, strata)):
        groups.setdefault(st, {}).setdefault((st, c), []).append(i)
    layers = [list(g.values()) for g in groups.values()]
    if not layers or any(len(layer) < 2 for layer in layers):
        return float("nan"), float("nan")
    rng = random.Random(seed)
    stats = []
    for _ in range(draws):
        idx = [i for layer in layers for _ in layer for i in layer[rng.randrange(len(layer))]]
        v = statistic(idx)
        if math.isfinite(v):
            stats.append(v)
    if len(stats) < draws / 2:
        return float("nan"), float("nan")
    stats.sort()
    tail = (1 - level) / 2
    return _quantile(stats, tail), _quantile(stats, 1 - tail)


def _quantile(sorted_xs: list[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default)."""
    pos = q * (len(sorted_xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_xs) - 1)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


def mean_interval(values: Sequence[float], clusters: Sequence[Hashable], **kw) -> tuple[float, float]:
    """Interval of the mean of `values` (e.g. 0/1 correctness), resampling `clusters`."""
    if len(values) != len(clusters):
        raise ValueError(f"{len(values)} values but {len(clusters)} cluster labels")
    return cluster_bootstrap(clusters, lambda idx: sum(values[i] for i in idx) / len(idx), **kw)


def difference_interval(a: Sequence[float], a_clusters: Sequence[Hashable], b: Sequence[float],
                        b_clusters: Sequence[Hashable], **kw) -> tuple[float, float]:
    """Interval of mean(a) - mean(b) for two independent samples of clusters (e.g. the forget
    drop minus the retain drop: different people), each resampled within its own sample."""
    n = len(a)
    if n != len(a_clusters) or len(b) != len(b_clusters):
        raise ValueError("each value needs its cluster label")
    values = list(a) + list(b)

    def stat(idx: list[int]) -> float:
        xa, xb = [values[i] for i in idx if i < n], [values[i] for i in idx if i >= n]
        return sum(xa) / len(xa) - sum(xb) / len(xb)
    return cluster_bootstrap(list(a_clusters) + list(b_clusters), stat,
                             strata=["a"] * n + ["b"] * len(b), **kw)


def auc(members: Sequence[float], nonmembers: Sequence[float]) -> float:
    """P(score(member) > score(non-member)), ties counted half (the Mann-Whitney U / n1 n2)."""
    if not members or not nonmembers:
        return float("nan")
    from scipy.stats import rankdata

    ranks = rankdata(list(members) + list(nonmembers))
    n1, n2 = len(members), len(nonmembers)
    u = ranks[:n1].sum() - n1 * (n1 + 1) / 2
    return float(u / (n1 * n2))


def paired_items(members: Sequence[Hashable], nonmembers: Sequence[Hashable]) -> tuple[list, list[int]]:
    """The cluster labels of members then non-members, and the member flags, for a bootstrap
    that resamples people across both sets at once (a person's members and non-members stay
    together)."""
    return list(members) + list(nonmembers), [1] * len(members) + [0] * len(nonmembers)


def auc_statistic(scores: Sequence[float], is_member: Sequence[int]) -> Callable[[list[int]], float]:
    """The AUC of the resampled items (`scores` and `is_member` as laid out by `paired_items`)."""
    def stat(idx: list[int]) -> float:
        return auc([scores[i] for i in idx if is_member[i]], [scores[i] for i in idx if not is_member[i]])
    return stat


def privleak(auc_model: float, auc_oracle: float) -> float:
    """MUSE's PrivLeak (Shi et al. 2024, Sec. 3, C3), as open-unlearning computes it
    (`evals/metrics/privacy.py::privleak`): MUSE reports the membership AUC as 1 - AUC, so
    PrivLeak = ((1 - AUC) - (1 - AUC_retrain)) / (1 - AUC_retrain) x 100. An oracle scores 0;
    a model that still separates members perfectly (AUC 1) against an oracle at 0.5 scores -100
    (under-unlearning is negative); an over-unlearned model, whose members look *less* familiar
    than non-members, is positive."""
    ref = 1 - auc_oracle
    if not math.isfinite(ref) or ref <= 0:
        return float("nan")
    return ((1 - auc_model) - ref) / ref * 100
