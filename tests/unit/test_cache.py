"""Cache entries appear whole or not at all."""
import pytest

from workbench import cache

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _tmp_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))


def test_content_hash_is_order_independent():
    assert cache.content_hash({"a": 1, "b": [1, 2]}) == cache.content_hash({"b": [1, 2], "a": 1})
    assert cache.content_hash({"a": 1}) != cache.content_hash({"a": 2})


def test_build_once_then_hit():
    calls = []
    path = cache.entry_path("models", "x", "k1")

    def build(tmp):
        calls.append(tmp)
        (tmp / "w.json").write_text("{}")

    assert cache.get_or_build(path, build) == (path, True)
    assert cache.get_or_build(path, build) == (path, False)
    assert len(calls) == 1 and (path / "w.json").is_file() and cache.is_complete(path)
    assert cache.entries("models") == [path]


def test_a_failed_build_leaves_nothing_a_later_run_trusts():
    path = cache.entry_path("models", "y", "k2")

    def crash(tmp):
        (tmp / "half.bin").write_bytes(b"x" * 10)
        raise KeyboardInterrupt  # like a user's ^C in the middle

    with pytest.raises(KeyboardInterrupt):
        cache.get_or_build(path, crash)
    assert not path.exists() and not list(path.parent.glob(".tmp-*"))
    assert cache.entries("models") == []


def test_killed_build_leftovers_are_ignored_and_cleaned():
    """A kill -9 leaves a temporary directory (and no marker); it is never trusted."""
    path = cache.entry_path("models", "z", "k3")
    stale = path.parent / f".tmp-{path.name}-dead"
    stale.mkdir(parents=True)
    (stale / "partial").write_text("?")
    path.mkdir()  # even a directory at the final name without the marker is not trusted
    assert cache.entries("models") == []
    cache.get_or_build(path, lambda tmp: (tmp / "ok").write_text("1"))
    assert not stale.exists() and (path / "ok").read_text() == "1"
