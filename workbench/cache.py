"""The on-disk cache: `$WORKBENCH_CACHE` (default `~/.cache/workbench`), content-addressed.

An entry is a directory named `<kind>/<name>-<hash>`. It is built in a temporary sibling
directory and renamed into place only when complete, and it holds a `COMPLETE` marker
written last, so a run killed half-way never leaves an entry a later run trusts. A file lock
per entry keeps two processes from building the same entry at once. The marker is the entry's
manifest (each file's size and sha256): an entry whose files no longer match it (truncated,
overwritten, missing) is named in a warning, removed and rebuilt. (An entry written before
manifests existed holds the marker "ok" and is used as it is.)
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
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


def output_dir(out: str | Path, kind: str, marker: str | Callable[[Path], bool], force: bool = False,
               option: str = "--out",
               hint: str = "--force writes the {kind}'s files into it (nothing else there is deleted)") -> Path:
    """Where an artefact of `kind` (told apart by its `marker` file, or by `marker(dir)` when it
    is a function) may be written: a new or empty directory, or one that holds an artefact of
    the same kind (whose files are then replaced). Any other directory is refused, before
    anything is computed, unless `force`: the workbench never deletes, nor mixes into, what it
    did not write."""
    from .errors import WorkbenchInputError

    path = Path(out)
    if path.exists() and not path.is_dir():
        raise WorkbenchInputError(f"{option} {str(out)!r} is a file: expected a directory for the {kind}")
    if path.is_dir() and any(path.iterdir()) and not force and not (
            marker(path) if callable(marker) else (path / marker).is_file()):
        what = "" if callable(marker) else f" ({marker})"
        raise WorkbenchInputError(f"{option} {str(out)!r} is a directory that holds other files and no {kind}"
                                  f"{what}: expected a new or empty directory, or a {kind} to replace"
                                  + (f"; {hint.format(kind=kind)}" if hint else ""))
    return path


def output_file(out: str | Path, kind: str, ours: Callable[[Path], bool], force: bool = False,
                option: str = "--out") -> Path:
    """Where a file artefact of `kind` may be written: a new path, or an existing file that
    `ours(path)` recognises as a `kind` the workbench wrote (it is then replaced). Any other file
    is refused before anything is computed, unless `force`; a directory always."""
    from .errors import WorkbenchInputError

    path = Path(out)
    if path.is_dir():
        raise WorkbenchInputError(f"{option} {str(out)!r} is a directory: expected a file name for the {kind}")
    if path.exists() and not force and not _recognised(ours, path):
        raise WorkbenchInputError(f"{option} {str(out)!r} already exists and is not a {kind} written by the "
                                  f"workbench: expected a new file name, or a {kind} to replace; --force "
                                  f"replaces it")
    return path


def _recognised(ours: Callable[[Path], bool], path: Path) -> bool:
    try:
        return bool(ours(path))
    except Exception:  # unreadable, or not the format at all: not ours
        return False


def head_holds(path: Path, text: str, limit: int = 4096) -> bool:
    """Whether the first `limit` bytes of a file hold `text` (how a written format is recognised)."""
    with open(path, "rb") as f:
        return text.encode() in f.read(limit)


def entry_path(kind: str, name: str, key: str) -> Path:
    return cache_root() / kind / f"{name}-{key}"


def is_complete(path: Path) -> bool:
    return (path / MARKER).is_file()


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def unchanged(path: Path, digest: str | None, recorded_in: str) -> None:
    """Refuse a file whose sha256 is not the one recorded when it was written (`digest`; None:
    written before digests were recorded, nothing to compare)."""
    if digest and file_digest(path) != digest:
        from .errors import WorkbenchInputError
        raise WorkbenchInputError(f"{str(path)!r} was changed after it was written (its sha256 no longer matches "
                                  f"{recorded_in}): write it again rather than use what it holds now")


def manifest(entry: Path) -> dict:
    """{relative path: [size, sha256]} of every file of an entry but its marker."""
    files = sorted(p for p in entry.rglob("*") if p.is_file() and p.name != MARKER)
    return {str(p.relative_to(entry)): [p.stat().st_size, file_digest(p)] for p in files}


def damage(entry: Path) -> str | None:
    """What no longer matches the entry's manifest (None: intact). An entry written before
    manifests has nothing to compare with: its files are parsed instead (a truncated or garbled
    safetensors or JSON file is damage) and, if they all parse, its manifest is written now, so
    that any later change is noticed (a change made before this cannot be)."""
    try:
        text = (entry / MARKER).read_text()
        if not text.startswith("{"):
            problem = _unparsable(entry)
            if problem is None:
                _upgrade(entry)
            return problem
        expected = json.loads(text)["files"]
        for name, (size, digest) in expected.items():
            f = entry / name
            if not f.is_file():
                return f"{name} is missing"
            if f.stat().st_size != size:
                return f"{name} has {f.stat().st_size:,} bytes, {size:,} when it was written"
            if file_digest(f) != digest:
                return f"{name} was changed since it was written"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"its manifest is unreadable ({type(exc).__name__}: {exc})"
    return None


def _unparsable(entry: Path) -> str | None:
    """The first safetensors or JSON file of an entry that does not parse."""
    for f in sorted(entry.rglob("*")):
        if not f.is_file() or f.name == MARKER:
            continue
        try:
            if f.suffix == ".safetensors":
                from safetensors import safe_open

                with safe_open(str(f), framework="pt") as h:
                    h.keys()
            elif f.suffix == ".json":
                json.loads(f.read_text())
        except Exception as exc:  # noqa: BLE001 (any parse failure is the file's damage)
            return f"{f.relative_to(entry)} does not parse ({type(exc).__name__}: {str(exc)[:120]})"
    return None


def _upgrade(entry: Path) -> None:
    """Replace an old entry's plain marker with its manifest."""
    try:
        with replacing(entry / MARKER) as tmp:
            tmp.write_text(json.dumps({"files": manifest(entry)}, indent=1))
    except OSError:  # a read-only cache: it stays as it was, and is still used
        pass


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
    if is_complete(path) and damage(path) is None:
        return path, False
    with _locked(path):
        if is_complete(path):
            problem = damage(path)
            if problem is None:
                return path, False
            print(f"warning: cache entry {str(path)!r} is damaged ({problem}): removing it and building it again",
                  file=sys.stderr)
            shutil.rmtree(path)
        for stale in path.parent.glob(f".tmp-{path.name}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        if path.exists():  # an incomplete entry from some older layout: never trust it
            shutil.rmtree(path)
        tmp = path.parent / f".tmp-{path.name}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            build(tmp)
            (tmp / MARKER).write_text(json.dumps({"files": manifest(tmp)}, indent=1))
            for f in tmp.rglob("*"):  # on disk before the rename makes the entry visible
                if f.is_file():
                    with open(f, "rb") as fh:
                        os.fsync(fh.fileno())
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
        with _locked(path):  # never under another process that is building or reading it
            shutil.rmtree(path, ignore_errors=True)
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
    with replacing(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=sort_keys, default=default) + "\n")


def entries(kind: str) -> list[Path]:
    base = cache_root() / kind
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if p.is_dir() and is_complete(p))
