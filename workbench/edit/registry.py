"""The operator registry: `apply_operator(loaded, localisation, task, name, options) -> Edit`,
and `apply_operator_cached`, which stores the edit in the cache under a content hash.

An operator is a class with a name, a one-line summary, a frozen `Config` dataclass, the site
kinds of localisation it accepts (`accepts`, empty when it uses none) and
`apply(loaded, localisation, task, config, progress) -> Edit`. Adding one is one new module in
this package (a subclass decorated with `@register`) plus its import in `edit/__init__.py`.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .. import cache
from ..errors import WorkbenchInputError
from ..localise.localisation import Localisation
from ..models.readouts import model_fingerprint
from ..registry import Registry, config_from_dict
from ..sites import SiteKind
from ..tasks.declared import train_view
from ..tasks.task import ForgetTask
from .edit import Edit

if TYPE_CHECKING:
    from ..models import LoadedModel

OPERATORS: Registry = Registry("operator")
CODE_VERSION = 2  # bump when an operator's edit changes for the same inputs (2: configs per loss)
#: the site kinds an operator can mask or ablate (everything but SAE features and routers)
UNIT_KINDS = frozenset({SiteKind.HEAD, SiteKind.NEURON, SiteKind.HOOK, SiteKind.WEIGHT, SiteKind.EXPERT})
DEFAULT_FRACTION = 0.05


class Operator:
    name: ClassVar[str]
    summary: ClassVar[str]
    Config: ClassVar[type]
    needs_localisation: ClassVar[bool] = True
    accepts: ClassVar[frozenset[SiteKind]] = frozenset()  # the localisation site kinds it uses
    version: ClassVar[int] = 1  # bump when its edits change for the same inputs (keys the cache)

    def apply(self, loaded: "LoadedModel", localisation: Localisation | None, task: ForgetTask, config,
              progress: bool) -> Edit:
        raise NotImplementedError

    @classmethod
    def takes(cls, localisation: Localisation | None) -> bool:
        """Whether this operator runs on `localisation` (None: the whole model)."""
        if localisation is None:
            return not cls.needs_localisation
        return localisation.kinds <= cls.accepts

    @classmethod
    def takes_kinds(cls, kinds: frozenset[SiteKind]) -> bool:
        """Whether a localiser producing these site kinds can feed this operator."""
        return bool(cls.accepts) and kinds <= cls.accepts


def register(cls):
    OPERATORS.register(cls.name)(cls)
    return cls


def budget(k: int | None, fraction: float | None) -> dict:
    """The selection budget every operator uses: k sites, else a fraction (default 0.05)."""
    if k is not None and fraction is not None:
        raise WorkbenchInputError(f"options k={k} and fraction={fraction}: give one of them, not both")
    if k is not None:
        return {"k": k, "fraction": None}
    return {"k": None, "fraction": DEFAULT_FRACTION if fraction is None else fraction}


def _check_request(cls, name: str, config, localisation: Localisation | None) -> None:
    """Refuse an operator / localisation / budget combination that cannot mean what it says."""
    if localisation is None and cls.needs_localisation:
        raise WorkbenchInputError(f"operator {name!r} needs a localisation (--localisation PATH or --method NAME)")
    if localisation is None:  # a budget selects a share of a localisation's sites: alone it would be ignored
        given = [f"{k}={getattr(config, k)}" for k in ("k", "fraction") if getattr(config, k, None) is not None]
        if given:
            raise WorkbenchInputError(f"option {' and '.join(given)}: a budget selects among a localisation's sites, "
                                      f"and operator {name!r} has no localisation (it would edit the whole model); "
                                      f"give --localisation PATH or --method NAME, or leave the option out")
    if localisation is not None and not cls.accepts:
        raise WorkbenchInputError(f"operator {name!r} takes no localisation (it edits the whole model); "
                                  f"leave out the localisation {localisation.name!r}")
    if localisation is not None and not cls.takes(localisation):
        raise WorkbenchInputError(f"operator {name!r} takes localisations of {', '.join(sorted(cls.accepts))} "
                                  f"sites; {localisation.name!r} gives {localisation.kind} sites")


def apply_operator(loaded: "LoadedModel", localisation: Localisation | None, task: ForgetTask, name: str,
                   options: dict[str, Any] | None = None, progress: bool = True) -> Edit:
    """The edit of operator `name`; the operator reads only the task's train view
    (`workbench.tasks.declared.train_view`)."""
    task = train_view(task)
    cls = OPERATORS.get(name)
    config = config_from_dict(cls.Config, options)
    _check_request(cls, name, config, localisation)
    start = time.perf_counter()
    edit = cls().apply(loaded, localisation, task, config, progress)
    edit.config = dataclasses.asdict(config)
    edit.provenance.update({
        "operator": name, "model": loaded.spec, "model_hash": model_fingerprint(loaded.model),
        "task": task.name, "task_hash": task.content_hash, "seconds": round(time.perf_counter() - start, 3),
        "localisation": None if localisation is None else {
            "identity": localisation.identity,
            **{k: localisation.provenance.get(k) for k in ("localiser", "config", "model_hash", "task_hash")}},
    })
    return edit


def apply_operator_cached(loaded: "LoadedModel", localisation: Localisation | None, task: ForgetTask, name: str,
                          options: dict[str, Any] | None = None, progress: bool = True,
                          fresh: bool = False) -> tuple[Edit, Path, bool]:
    """`apply_operator`, stored in the cache (edit.safetensors + edit.json) under a content hash
    of (model weights, task, the localisation's identity, operator, config, code version).
    Returns (edit, path, reused)."""
    cls = OPERATORS.get(name)
    config = config_from_dict(cls.Config, options)
    _check_request(cls, name, config, localisation)  # before the cache: a refused request is never answered
    key = cache.content_hash({"model": model_fingerprint(loaded.model), "task": train_view(task).content_hash,
                              "localisation": None if localisation is None else localisation.identity,
                              "operator": name, "config": dataclasses.asdict(config),
                              "code": [CODE_VERSION, cls.version]})
    return cache.cached(cache.entry_path("edits", name, key),
                        lambda: apply_operator(loaded, localisation, task, name, options, progress), Edit.save,
                        Edit.load, fresh)
