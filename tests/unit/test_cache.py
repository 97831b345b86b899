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


def test_concurrent_writers_of_one_json_entry_never_collide(tmp_path):
    """Process/Ray workers may measure the same entry at once: every write goes through its own
    temporary file, so none fails, the entry is always one whole document, nothing is left over."""
    import json
    import threading

    path = tmp_path / "entry.json"
    docs = [{"writer": i, "values": list(range(200)), "z": 1, "a": 2} for i in range(6)]
    errors = []

    def write(doc):
        try:
            for _ in range(40):
                cache.write_json(path, doc, sort_keys=False)
        except Exception as exc:  # noqa: BLE001 - any failure is what this test looks for
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(d,)) for d in docs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert json.loads(path.read_text()) in docs
    assert list(json.loads(path.read_text())) == ["writer", "values", "z", "a"]  # order kept
    assert [p.name for p in tmp_path.iterdir()] == ["entry.json"]


def test_a_value_json_cannot_hold_is_an_error_and_leaves_no_file(tmp_path):
    path = tmp_path / "entry.json"
    with pytest.raises(TypeError):
        cache.write_json(path, {"x": object()}, default=None)
    assert list(tmp_path.iterdir()) == []
