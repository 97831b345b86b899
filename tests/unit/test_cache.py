"""Cache entries appear whole or not at all."""
import json

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


@pytest.mark.parametrize("damage", ["zeros inside", "truncated", "removed", "manifest garbled"])
def test_a_damaged_entry_is_named_removed_and_rebuilt(damage, capsys):
    """The marker is the entry's manifest (each file's size and sha256): 1 MB of zeros written
    into a cached weights file, a truncated file or a missing one is noticed on the next use,
    named in a warning, and the entry is built again (never used as it is)."""
    path = cache.entry_path("models", "m", "k")
    calls = []

    def build(tmp):
        calls.append(tmp)
        (tmp / "model.safetensors").write_bytes(bytes(range(256)) * 8192)  # 2 MB
        (tmp / "sub").mkdir()
        (tmp / "sub" / "info.json").write_text('{"a": 1}')

    cache.get_or_build(path, build)
    weights = path / "model.safetensors"
    if damage == "zeros inside":
        with open(weights, "r+b") as f:
            f.seek(4096)
            f.write(bytes(1 << 20))
    elif damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif damage == "removed":
        (path / "sub" / "info.json").unlink()
    else:
        (path / cache.MARKER).write_text("{not json")
    assert cache.damage(path) is not None
    assert cache.get_or_build(path, build) == (path, True) and len(calls) == 2
    assert f"cache entry {str(path)!r} is damaged" in capsys.readouterr().err
    assert cache.damage(path) is None and weights.read_bytes() == bytes(range(256)) * 8192
    assert cache.get_or_build(path, build) == (path, False) and len(calls) == 2  # intact: used as it is


def test_an_entry_from_before_manifests_is_parsed_then_given_its_manifest(capsys):
    """An old entry (a plain marker) whose files parse is used as it is and gets its manifest,
    so a later change is noticed; one whose safetensors file was truncated is rebuilt."""
    import torch
    from safetensors.torch import save_file

    path = cache.entry_path("models", "old", "k")
    path.mkdir(parents=True)
    (path / "w.json").write_text("{}")
    save_file({"w": torch.arange(4096.0)}, str(path / "model.safetensors"))
    (path / cache.MARKER).write_text("ok\n")
    assert cache.get_or_build(path, lambda tmp: pytest.fail("rebuilt an intact old entry")) == (path, False)
    assert json.loads((path / cache.MARKER).read_text())["files"].keys() == {"w.json", "model.safetensors"}
    (path / "w.json").write_text('{"changed": 1}')  # noticed now: the manifest records the file
    assert "w.json" in cache.damage(path)

    old = cache.entry_path("models", "old", "k2")
    old.mkdir(parents=True)
    save_file({"w": torch.arange(4096.0)}, str(old / "model.safetensors"))
    weights = old / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:2000])
    (old / cache.MARKER).write_text("ok\n")
    built = []
    assert cache.get_or_build(old, lambda tmp: built.append((tmp / "x.json").write_text("{}"))) == (old, True)
    assert built and "model.safetensors does not parse" in capsys.readouterr().err


def test_an_edited_probe_measurement_is_measured_again(capsys):
    """A probe family's cached raw measurement carries its digest: a value edited in the file
    is not reported as measured."""
    import json

    from probes.run import _cached

    key = {"family": "behaviour", "model": "m"}
    runs = []

    def measure():
        runs.append(1)
        return {"accuracy": 0.25, "n": [3, float("nan")]}

    raw, reused = _cached(key, measure, True)
    assert not reused and runs == [1]
    raw, reused = _cached(key, measure, True)  # NaN survives the round trip and the digest
    assert reused and raw["accuracy"] == 0.25 and raw["n"][0] == 3 and raw["n"][1] != raw["n"][1] and len(runs) == 1
    path = next((cache.cache_root() / "probes").glob("behaviour-*.json"))
    stored = json.loads(path.read_text())
    stored["raw"]["accuracy"] = 0.0  # looks like perfect unlearning
    path.write_text(json.dumps(stored))
    raw, reused = _cached(key, measure, True)
    assert not reused and raw["accuracy"] == 0.25 and len(runs) == 2
    assert "is damaged (its content does not match its digest)" in capsys.readouterr().err
