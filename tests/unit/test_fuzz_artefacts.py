"""Corrupted artefacts (issue: safe by default): hypothesis damages a saved edit, localisation,
probe result or study store (truncates a file, writes zeros or random bytes inside it, drops a
JSON field, swaps a tensor for one of another shape) and asserts, for each case, one line naming
the artefact (a `WorkbenchInputError`) or exactly the artefact that was saved; never a
traceback, and never other numbers than those written (a changed tensor is caught by the digest
each artefact records of its tensors)."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from probes.result import Metric, ProbeResult
from workbench.edit import Edit
from workbench.errors import WorkbenchInputError
from workbench.localise import Localisation
from workbench.sites import NeuronSite
from workbench.study.store import Store

pytestmark = pytest.mark.unit
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
DAMAGE = st.sampled_from(["truncate", "zeros", "random bytes", "drop a field", "reshape a tensor"])


def _localisation() -> Localisation:
    sites = [NeuronSite(layer, i) for layer in range(2) for i in range(10)]
    return Localisation(sites, torch.linspace(0, 1, len(sites)), {"localiser": "fuzz", "config": {}})


def _edit() -> Edit:
    torch.manual_seed(0)
    return Edit("fuzz", {"weight": torch.randn(4, 3), "bias": torch.randn(4)}, [], {"model": "fuzz"}, {})


def _result() -> ProbeResult:
    m = Metric("behaviour.forget.all", "behaviour", "lower", {"original": 0.9, "oracle": 0.1},
               intervals={"original": [0.85, 0.95]})
    return ProbeResult("t", "h", {"original": "a", "oracle": "b"}, [m])


def _damage(path: Path, how: str, data: st.DataObject) -> None:
    blob = path.read_bytes()
    if how == "truncate":
        path.write_bytes(blob[:data.draw(st.integers(0, max(0, len(blob) - 1)))])
    elif how in ("zeros", "random bytes"):
        at = data.draw(st.integers(0, max(0, len(blob) - 1)))
        n = data.draw(st.integers(1, 64))
        fill = bytes(n) if how == "zeros" else data.draw(st.binary(min_size=n, max_size=n))
        path.write_bytes(blob[:at] + fill + blob[at + n:])
    elif how == "drop a field" and path.suffix == ".json":
        meta = json.loads(blob)
        if isinstance(meta, dict) and meta:
            meta.pop(data.draw(st.sampled_from(sorted(meta))))
        path.write_text(json.dumps(meta))
    elif how == "reshape a tensor" and path.suffix == ".safetensors":
        tensors = load_file(str(path))
        name = data.draw(st.sampled_from(sorted(tensors)))
        tensors[name] = torch.zeros(1)  # one element: `copy_` would broadcast it over a whole parameter
        save_file(tensors, str(path))


def _one_line_naming(exc: Exception, path: Path) -> None:
    text = str(exc)
    assert "\n" not in text and str(path) in text, text


def _damaged_then_loaded(folder: Path, artefact, files: list[str], load, how: str, data: st.DataObject):
    """Save `artefact` into `folder`, damage one of its `files`, load it: the loaded value, or
    None when loading refused it in one line naming the artefact."""
    path = artefact.save(folder)
    _damage(path / data.draw(st.sampled_from(files)), how, data)
    try:
        return load(path)
    except WorkbenchInputError as exc:
        _one_line_naming(exc, path)
        return None


@FUZZ
@given(DAMAGE, st.data())
def test_a_damaged_localisation_is_refused_or_read_exactly(tmp_path_factory, how, data):
    loaded = _damaged_then_loaded(tmp_path_factory.mktemp("loc"), _localisation(),
                                  ["scores.safetensors", "localisation.json"], Localisation.load, how, data)
    assert loaded is None or loaded == _localisation()


@FUZZ
@given(DAMAGE, st.data())
def test_a_damaged_edit_is_refused_or_read_exactly(tmp_path_factory, how, data):
    loaded = _damaged_then_loaded(tmp_path_factory.mktemp("edit"), _edit(), ["edit.safetensors", "edit.json"],
                                  Edit.load, how, data)
    if loaded is not None:
        model = torch.nn.Linear(3, 4)
        with loaded.applied(model):  # what it puts on the model is what was saved
            assert torch.equal(model.weight, _edit().weights["weight"])
            assert torch.equal(model.bias, _edit().weights["bias"])


@FUZZ
@given(DAMAGE, st.data())
def test_a_damaged_probe_result_is_refused_or_read_exactly(tmp_path_factory, how, data):
    path = _result().save(tmp_path_factory.mktemp("result") / "result.json")
    _damage(path, how, data)
    try:
        loaded = ProbeResult.load(path)
    except WorkbenchInputError as exc:
        return _one_line_naming(exc, path)
    # JSON carries no digest: a result that still parses is what its text says, field by field
    assert loaded.to_dict() == ProbeResult.from_dict(json.loads(path.read_text())).to_dict()


@FUZZ
@given(st.sampled_from(["truncate", "zeros", "random bytes"]), st.data())
def test_a_damaged_study_store_is_refused_or_opens(tmp_path_factory, how, data):
    path = tmp_path_factory.mktemp("store") / "study.sqlite"
    with Store(path) as store:
        store.set_meta("name", "fuzz")
    _damage(path, how, data)
    try:
        with Store(path) as store:
            store.cells()
    except WorkbenchInputError as exc:
        return _one_line_naming(exc, path)
    except sqlite3.DatabaseError as exc:  # pragma: no cover - the failure this test exists to catch
        pytest.fail(f"a damaged store reached the user as a traceback: {exc}")
