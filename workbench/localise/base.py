"""The localiser registry and `run`: every localiser is a class with a frozen `Config` and
`run(loaded, task, config, progress) -> Localisation`, registered once by name."""
from __future__ import annotations

import dataclasses
import time
from typing import Any, ClassVar

from ..registry import Registry, config_from_dict
from .localisation import Localisation, model_fingerprint

LOCALISERS: Registry = Registry("localiser")


class Localiser:
    """Subclasses set `name`, `kind`, a frozen dataclass `Config`, a one-line `summary`,
    and implement `localise`."""

    name: ClassVar[str]
    kind: ClassVar[str]
    summary: ClassVar[str]
    Config: ClassVar[type]

    def localise(self, loaded, task, config, progress: bool):  # -> (kind, sites, scores, weight_scores, extra)
        raise NotImplementedError


def check_layers(model, layers) -> list[int]:
    """The layers option: None = every layer; out-of-range layers are named."""
    n_layers = model.config.num_hidden_layers
    if layers is None:
        return list(range(n_layers))
    bad = [L for L in layers if not 0 <= L < n_layers]
    if bad:
        raise ValueError(f"option layers: layer {bad[0]} out of range (model has {n_layers})")
    return list(layers)


def register(cls):
    LOCALISERS.register(cls.name)(cls)
    return cls


def localise(loaded, task, method: str, options: dict[str, Any] | None = None, progress: bool = True) -> Localisation:
    """Run the localiser `method` on a loaded model and a forget task."""
    cls = LOCALISERS.get(method)
    config = config_from_dict(cls.Config, options)
    start = time.perf_counter()
    result: Localisation = cls().localise(loaded, task, config, progress)
    result.provenance.update({
        "localiser": method, "config": dataclasses.asdict(config), "model": loaded.spec,
        "model_hash": model_fingerprint(loaded.model), "task": task.name, "task_hash": task.content_hash,
        "seconds": round(time.perf_counter() - start, 3),
    })
    return result


CODE_VERSION = 1  # bump when a localiser's numbers change for the same config


def localise_cached(loaded, task, method: str, options: dict[str, Any] | None = None,
                    progress: bool = True, fresh: bool = False) -> tuple[Localisation, Any, bool]:
    """`localise`, stored in the cache under a content hash of (model weights, task, method,
    config, code version); a second call with the same inputs loads the stored result.
    Returns (localisation, path, reused)."""
    from .. import cache

    cls = LOCALISERS.get(method)
    config = config_from_dict(cls.Config, options)
    key = cache.content_hash({"model": model_fingerprint(loaded.model), "task": task.content_hash,
                              "method": method, "config": dataclasses.asdict(config), "code": CODE_VERSION})
    path = cache.entry_path("localisations", method, key)
    if fresh and cache.is_complete(path):
        import shutil
        shutil.rmtree(path)
    result: list[Localisation] = []

    def build(tmp):
        loc = localise(loaded, task, method, options, progress)
        loc.save(tmp)
        result.append(loc)
    path, built = cache.get_or_build(path, build)
    return (result[0] if result else Localisation.load(path)), path, not built
