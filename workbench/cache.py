"""The on-disk cache: `$WORKBENCH_CACHE` (default `~/.cache/workbench`), content-addressed.

An entry is a directory named `<kind>/<name>-<hash>`. It is built in a temporary sibling
directory and renamed into place only when complete, and it holds a `COMPLETE` marker
written last, so a run killed half-way never leaves an entry a later run trusts. A file lock
per entry keeps two processes from building the same entry at once.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

T = TypeVar("T")

MARKER = "COMPLETE"


def cache_root() -> Path:
    root = Path(os.environ.get("WORKBENCH_CACHE", Path.home() / ".cache" / "workbench"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def content_hash(obj) -> str:
    """sha256 of the canonical JSON of `obj` (sorted keys), 16 hex digits."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Write a file atomically: the block writes the yielded temporary sibling, which is then
    fsynced and renamed over `path`; if the block fails, `path` is left as it was."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def output_dir(out: str | Path, kind: str, marker: str, force: bool = False, option: str = "--out",
               hint: str = "--force writes the {kind}'s files into it (nothing else there is deleted)") -> Path:
    """Where an artefact of `kind` (told apart by its `marker` file) may be written: a new or
    empty directory, or one that holds an artefact of the same kind (whose files are then
    replaced). Any other directory is refused, before anything is computed, unless `force`:
    the workbench never deletes, nor mixes into, what it did not write."""
    from .errors import WorkbenchInputError

    path = Path(out)
    if path.exists() and not path.is_dir():
        raise WorkbenchInputError(f"{option} {str(out)!r} is a file: expected a directory for the {kind}")
    if path.is_dir() and any(path.iterdir()) and not (path / marker).is_file() and not force:
        raise WorkbenchInputError(f"{option} {str(out)!r} is a directory that holds other files and no {kind} "
                                  f"({marker}): expected a new or empty directory, or a {kind} to replace"
                                  + (f"; {hint.format(kind=kind)}" if hint else ""))
    return path


def entry_path(kind: str, name: str, key: str) -> Path:
    return cache_root() / kind / f"{name}-{key}"


def is_complete(path: Path) -> bool:
    return (path / MARKER).is_file()


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def get_or_build(path: Path, build: Callable[[Path], None]) -> tuple[Path, bool]:
    """Return (path, built). If the entry is missing, `build(tmp_dir)` fills a temporary
    directory that is then renamed to `path`. Stale temporary directories are removed."""
    if is_complete(path):
        return path, False
    with _locked(path):
        if is_complete(path):
            return path, False
        for stale in path.parent.glob(f".tmp-{path.name}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        if path.exists():  # an incomplete entry from some older layout: never trust it
            shutil.rmtree(path)
        tmp = path.parent / f".tmp-{path.name}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            build(tmp)
            (tmp / MARKER).write_text("ok\n")
            os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return path, True


def cached(path: Path, make: Callable[[], T], save: Callable[[T, Path], object], load: Callable[[Path], T],
           fresh: bool = False) -> tuple[T, Path, bool]:
    """A value kept in the cache entry `path`: made and saved into the entry when it is missing
    (or `fresh`), else loaded from it. Returns (value, path, reused)."""
    if fresh and is_complete(path):
        shutil.rmtree(path)
    made: list = []

    def build(tmp: Path) -> None:
        value = make()
        save(value, tmp)
        made.append(value)
    path, built = get_or_build(path, build)
    return (made[0] if made else load(path)), path, not built


def write_json(path: Path, obj, sort_keys: bool = True, default=str) -> None:
    """Write JSON atomically: a temporary file of a unique name (concurrent writers of the
    same entry never share one), then a rename. `sort_keys=False` keeps the mapping order;
    `default=None` makes a value JSON cannot hold an error instead of its `str`."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=sort_keys, default=default) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def entries(kind: str) -> list[Path]:
    base = cache_root() / kind
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if p.is_dir() and is_complete(p))
