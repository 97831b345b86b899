"""The localiser registry, `localise` and its cached twin `localise_cached`.

A localiser is a class with a name, the site kinds it scores, a one-line summary, a frozen
`Config` dataclass and `localise(loaded, task, config, progress) -> Localisation`. Adding one
is one new module in this package plus its import in `workbench/localise/__init__.py`.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .. import cache
from ..errors import WorkbenchInputError
from ..models.readouts import model_fingerprint
from ..registry import Registry, config_from_dict
from ..sites import SiteKind
from ..tasks.declared import train_view
from ..tasks.task import ForgetTask
from .localisation import Localisation

if TYPE_CHECKING:
    from ..models import LoadedModel

LOCALISERS: Registry = Registry("localiser")
CODE_VERSION = 2  # 2: the Localisation format without a stored kind; one subsampling rule


class Localiser:
    """Subclasses set `name`, `kinds` (the site kinds it can score), a frozen dataclass
    `Config`, a one-line `summary`, and implement `localise`; `version` is bumped when its
    numbers change for the same inputs (it keys the cache)."""

    name: ClassVar[str]
    kinds: ClassVar[frozenset[SiteKind]]
    summary: ClassVar[str]
    Config: ClassVar[type]
    version: ClassVar[int] = 1

    def localise(self, loaded: "LoadedModel", task: ForgetTask, config, progress: bool) -> Localisation:
        raise NotImplementedError


def check_layers(model, layers) -> list[int]:
    """The layers option: None = every layer; out-of-range layers are named."""
    n_layers = model.config.num_hidden_layers
    if layers is None:
        return list(range(n_layers))
    bad = [L for L in layers if not 0 <= L < n_layers]
    if bad:
        raise WorkbenchInputError(f"option layers: layer {bad[0]} out of range (model has {n_layers})")
    return list(layers)


def register(cls):
    LOCALISERS.register(cls.name)(cls)
    return cls


def localise(loaded: "LoadedModel", task: ForgetTask, method: str, options: dict[str, Any] | None = None,
             progress: bool = True) -> Localisation:
    """Run the localiser `method` on a loaded model and a forget task; it reads only the
    task's train view (`workbench.tasks.declared.train_view`)."""
    task = train_view(task)
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


def localise_cached(loaded: "LoadedModel", task: ForgetTask, method: str, options: dict[str, Any] | None = None,
                    progress: bool = True, fresh: bool = False) -> tuple[Localisation, Path, bool]:
    """`localise`, stored in the cache under a content hash of (model weights, task, method,
    config, code version); a second call with the same inputs loads the stored result.
    Returns (localisation, path, reused)."""
    cls = LOCALISERS.get(method)
    config = config_from_dict(cls.Config, options)
    key = cache.content_hash({"model": model_fingerprint(loaded.model), "task": train_view(task).content_hash,
                              "method": method, "config": dataclasses.asdict(config),
                              "code": [CODE_VERSION, cls.version]})
    return cache.cached(cache.entry_path("localisations", method, key),
                        lambda: localise(loaded, task, method, options, progress), Localisation.save,
                        Localisation.load, fresh)
