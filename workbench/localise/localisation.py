"""`Localisation`: what a localiser returns and every operator consumes.

A score per site (higher = more responsible for the forget knowledge) and provenance
(localiser, config, model and task hashes, seconds taken). Its site kinds (`kinds`, in the
vocabulary of `workbench.sites.SiteKind`) follow from its sites. Unit localisations (heads,
neurons, component outputs, experts, SAE features) score one site each; weight localisations
(WAGLE, SalUn, ...) score every scalar weight and also carry one summary score per weight
tensor. On disk: `scores.safetensors` + `localisation.json` in one directory.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ..cache import file_digest, replacing, unchanged
from ..errors import MissingInputError, WorkbenchInputError
from ..models.arch import component_weights, resolve, weight_sites
from ..sites import HookSite, Site, SiteKind, coarse

FORMAT_VERSION = 2  # 2: the kind is derived from the sites (no stored kind)
READABLE = (1, 2)  # format 1 also stored a kind, which is now derived and ignored


def _count(n_total: int, k: int | None, fraction: float | None) -> int:
    if (k is None) == (fraction is None):
        raise WorkbenchInputError("give exactly one of k= or fraction=")
    if k is not None:
        if k < 0:
            raise WorkbenchInputError(f"k={k}: expected a non-negative integer")
        return min(k, n_total)
    if not 0.0 <= fraction <= 1.0:
        raise WorkbenchInputError(f"fraction={fraction}: expected a number in [0, 1]")
    return min(n_total, max(1, math.ceil(fraction * n_total - 1e-9))) if fraction > 0 else 0


def top_flat(scores: torch.Tensor, n: int) -> torch.Tensor:
    """Boolean mask of the n largest entries of a 1-D tensor; ties broken by index."""
    flat = scores.reshape(-1)
    mask = torch.zeros_like(flat, dtype=torch.bool)
    if n <= 0:
        return mask
    if n >= flat.numel():
        return ~mask
    threshold = torch.kthvalue(flat, flat.numel() - n + 1).values
    mask = flat > threshold
    missing = n - int(mask.sum())
    if missing > 0:
        ties = (flat == threshold).nonzero().flatten()[:missing]
        mask[ties] = True
    return mask


def unflatten(flat: torch.Tensor, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Split a flat tensor back into tensors shaped like `like`'s values (same key order)."""
    out, start = {}, 0
    for name, t in like.items():
        out[name] = flat[start : start + t.numel()].reshape(t.shape)
        start += t.numel()
    return out


@dataclass
class Localisation:
    sites: tuple[Site, ...]
    scores: torch.Tensor  # float32 [len(sites)]
    provenance: dict = field(default_factory=dict)
    weight_scores: dict[str, torch.Tensor] = field(default_factory=dict)  # HF param name -> scores

    def __post_init__(self):
        """Invariants: a violation is a bug in the code that built it (`load` reports a
        malformed file as the user's input)."""
        self.sites = tuple(self.sites)
        bad = [s for s in self.sites if not isinstance(s, Site)]
        if bad:
            raise TypeError(f"a localisation's sites are Site values; got {bad[0]!r}")
        if not self.sites:
            raise ValueError("a localisation needs at least one site")
        self.scores = torch.as_tensor(self.scores, dtype=torch.float32).reshape(-1)
        if self.scores.numel() != len(self.sites):
            raise ValueError(f"{len(self.sites)} sites but {self.scores.numel()} scores")
        if len(set(self.sites)) != len(self.sites):
            raise ValueError("a localisation lists each site once")
        if SiteKind.WEIGHT in self.kinds and (len(self.kinds) > 1 or not self.weight_scores):
            raise ValueError("a weight localisation holds weight sites only, with per-scalar weight_scores")

    # -- what it is ------------------------------------------------------------------------
    @cached_property
    def kinds(self) -> frozenset[SiteKind]:
        """The site kinds it scores (`workbench.sites.SiteKind`)."""
        return frozenset(s.kind for s in self.sites)

    @property
    def kind(self) -> str:
        """Its site kind, or the kinds joined by '+' when it scores several (e.g. head+hook)."""
        return "+".join(sorted(self.kinds))

    @property
    def name(self) -> str:
        return self.provenance.get("localiser", "?")

    @cached_property
    def identity(self) -> str:
        """Content hash of the sites and every score (what an edit made from it depends on)."""
        h = hashlib.sha256("\n".join(map(str, self.sites)).encode())
        h.update(self.scores.contiguous().numpy().tobytes())
        for n, t in self.weight_scores.items():
            h.update(n.encode())
            h.update(t.float().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    # -- ranking --------------------------------------------------------------------------

    def order(self) -> list[int]:
        """Site indices by descending score; ties in site order (deterministic)."""
        keys = [s.sort_key() for s in self.sites]
        vals = self.scores.tolist()
        return sorted(range(len(self.sites)), key=lambda i: (-vals[i], keys[i]))

    def ranked(self) -> list[tuple[Site, float]]:
        vals = self.scores.tolist()
        return [(self.sites[i], vals[i]) for i in self.order()]

    @property
    def n_scalars(self) -> int:
        return sum(t.numel() for t in self.weight_scores.values())

    def top(self, k: int | None = None, fraction: float | None = None) -> list[Site]:
        """The top sites. For a weight localisation k/fraction count scalar weights and the
        result is every weight tensor holding at least one selected scalar."""
        if self.kind == SiteKind.WEIGHT:
            masks = self.weight_mask(k=k, fraction=fraction)
            slices = self.provenance.get("site_slices", {})
            hit = {str(s) for s, (name, index) in _decoded(slices).items()
                   if name in masks and bool(masks[name][index].any())}
            return [s for s, _ in self.ranked() if str(s) in hit]
        n = _count(len(self.sites), k, fraction)
        return [self.sites[i] for i in self.order()[:n]]

    def site_params(self, model: nn.Module, site: Site) -> int:
        """How many parameters a site owns (a whole component for hook sites)."""
        targets = component_weights(model, site) if isinstance(site, HookSite) else [site]
        return sum(ps.view(model).numel() for t in targets for ps in resolve(t, model).params)

    def top_by_params(self, model: nn.Module, budget: int | None = None,
                      fraction: float | None = None) -> list[Site]:
        """Whole sites in rank order until their parameters reach a budget (a count, or a
        fraction of the model's parameters): the circuit paper's component budget. The
        last site may overshoot the budget; none is split."""
        total = sum(p.numel() for p in model.parameters())
        if (budget is None) == (fraction is None):
            raise WorkbenchInputError("give exactly one of budget= or fraction=")
        limit = budget if budget is not None else fraction * total
        chosen, used = [], 0
        for site, _ in self.ranked():
            if used >= limit:
                break
            chosen.append(site)
            used += self.site_params(model, site)
        return chosen

    def weight_mask(self, k: int | None = None, fraction: float | None = None) -> dict[str, torch.Tensor]:
        """Global top-k/fraction over every scored scalar weight."""
        flat = torch.cat([t.reshape(-1).float() for t in self.weight_scores.values()])
        return unflatten(top_flat(flat, _count(flat.numel(), k, fraction)), self.weight_scores)

    def mask(self, model: nn.Module, k: int | None = None, fraction: float | None = None,
             sites: list[Site] | None = None) -> dict[str, torch.Tensor]:
        """Per-parameter boolean masks (True = may change) for fine-tuning the top sites
        (or the given `sites`, e.g. from `top_by_params`)."""
        if self.kind == SiteKind.WEIGHT:
            masks = self.weight_mask(k=k, fraction=fraction)
            return {n: m for n, m in masks.items() if m.any()}
        out: dict[str, torch.Tensor] = {}
        for site in (sites if sites is not None else self.top(k=k, fraction=fraction)):
            targets = component_weights(model, site) if isinstance(site, HookSite) else [site]
            for target in targets:
                for ps in resolve(target, model).params:
                    if ps.name not in out:
                        out[ps.name] = torch.zeros_like(model.get_parameter(ps.name), dtype=torch.bool)
                    out[ps.name][ps.index] = True
        return out

    # -- summaries ------------------------------------------------------------------------
    def coarse_scores(self) -> dict[tuple, float]:
        """Scores summed per (layer, component): the granularity shared by all localisers."""
        out: dict[tuple, float] = {}
        for site, score in zip(self.sites, self.scores.tolist()):
            key = coarse(site)
            out[key] = out.get(key, 0.0) + score
        return out

    def coarse_density(self, fraction: float = 0.05) -> dict[tuple, float]:
        """Per (layer, component): the share of that cell's sites (weights: scalars) that are
        in the top `fraction`. Comparable across localisers whatever their score scales,
        and independent of cell size (a random localisation gives every cell ~`fraction`)."""
        size: dict[tuple, float] = {}
        chosen: dict[tuple, float] = {}
        if self.kind == SiteKind.WEIGHT:
            masks = self.weight_mask(fraction=fraction)
            for site, (name, index) in _decoded(self.provenance.get("site_slices", {})).items():
                key = coarse(Site.parse(site))
                m = masks[name][index]
                size[key] = size.get(key, 0) + m.numel()
                chosen[key] = chosen.get(key, 0) + int(m.sum())
        else:
            top = set(self.top(fraction=fraction))
            for site in self.sites:
                key = coarse(site)
                size[key] = size.get(key, 0) + 1
                chosen[key] = chosen.get(key, 0) + (site in top)
        return {k: chosen[k] / size[k] for k in size}

    def per_layer(self, k: int | None = None, fraction: float | None = None) -> list[dict]:
        chosen = set(self.top(k=k, fraction=fraction)) if (k is not None or fraction is not None) else set()
        rows: dict = {}
        for site, score in zip(self.sites, self.scores.tolist()):
            layer, comp = coarse(site)
            row = rows.setdefault((layer if layer is not None else -1, comp), {
                "layer": "-" if layer is None else layer, "component": comp, "sites": 0,
                "selected": 0, "score_sum": 0.0, "score_max": -math.inf})
            row["sites"] += 1
            row["selected"] += site in chosen
            row["score_sum"] += score
            row["score_max"] = max(row["score_max"], score)
        return [rows[k] for k in sorted(rows, key=lambda x: (x[0], x[1]))]

    # -- disk -----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tensors = {"scores": self.scores.contiguous()}
        tensors.update({f"weight::{n}": t.float().contiguous() for n, t in self.weight_scores.items()})
        with replacing(path / "scores.safetensors") as tmp:  # each file written whole, or not at all
            save_file(tensors, str(tmp))
        meta = {"format_version": FORMAT_VERSION, "sites": [str(s) for s in self.sites],
                "weights": list(self.weight_scores), "provenance": self.provenance,
                "tensors_sha256": file_digest(path / "scores.safetensors")}
        with replacing(path / "localisation.json") as tmp:
            tmp.write_text(json.dumps(meta, indent=1, sort_keys=True))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Localisation":
        path = Path(path)
        meta_file, tensor_file = path / "localisation.json", path / "scores.safetensors"
        for f in (meta_file, tensor_file):
            if not f.is_file():
                raise MissingInputError(f"localisation {str(path)!r}: missing {f.name} "
                                        f"(expected a directory written by Localisation.save)")
        try:
            meta = json.loads(meta_file.read_text())
            if meta.get("format_version") not in READABLE:
                raise WorkbenchInputError(f"format_version {meta.get('format_version')!r}, expected one of {READABLE}")
            unchanged(tensor_file, meta.get("tensors_sha256"), "localisation.json")
            tensors = load_file(str(tensor_file))
            weights = {n: tensors[f"weight::{n}"] for n in meta["weights"]}
            sites = tuple(Site.parse(s) for s in meta["sites"])
            for name, t in {"scores": tensors["scores"], **weights}.items():
                bad = int((~torch.isfinite(t.float())).sum())
                if bad:  # NaN or inf scores rank nothing: a broken run or an edited file
                    raise WorkbenchInputError(f"{bad} of {t.numel()} {name} are not finite (NaN or inf): it cannot "
                                              f"rank sites; localise again (--fresh)")
            return cls(sites, tensors["scores"], meta["provenance"], weights)
        except WorkbenchInputError as exc:
            raise WorkbenchInputError(f"localisation {str(path)!r}: {exc}") from None
        except (ValueError, TypeError, KeyError, OSError, SafetensorError) as exc:  # a malformed file
            raise WorkbenchInputError(f"localisation {str(path)!r} is not readable: {type(exc).__name__}: "
                                      f"{exc}") from None

    def __eq__(self, other) -> bool:
        if not isinstance(other, Localisation):
            return NotImplemented
        return (self.sites == other.sites
                and torch.equal(self.scores, other.scores) and self.provenance == other.provenance
                and list(self.weight_scores) == list(other.weight_scores)
                and all(torch.equal(self.weight_scores[n], other.weight_scores[n]) for n in self.weight_scores))


def _encode_index(index: tuple) -> list:
    return [[i.start, i.stop] if isinstance(i, slice) else i for i in index]


def _decode_index(index: list) -> tuple:
    return tuple(slice(*i) if isinstance(i, list) else i for i in index)


def _decoded(slices: dict) -> dict[str, tuple[str, tuple]]:
    return {site: (name, _decode_index(index)) for site, (name, index) in slices.items()}


def weight_localisation(model: nn.Module, weight_scores: dict[str, torch.Tensor], provenance: dict) -> Localisation:
    """A weight localisation: per-scalar scores plus one summary site per weight tensor of
    the site grammar (score = sum of its scalars' scores)."""
    scored = {n: t.detach().float() for n, t in weight_scores.items()}
    sites, sums, slices = [], [], {}
    for site, ps in weight_sites(model):
        if ps.name in scored:
            sites.append(site)
            sums.append(float(scored[ps.name][ps.index].sum()))
            slices[str(site)] = [ps.name, _encode_index(ps.index)]
    prov = dict(provenance, site_slices=slices)
    return Localisation(tuple(sites), torch.tensor(sums), prov, scored)
