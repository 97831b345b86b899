"""The app touches one directory, its workspace: every path a user types is taken inside it,
and one that resolves outside (`..`, another absolute path, a link out) is refused."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from workbench.cache import output_dir
from workbench.errors import WorkbenchInputError

pytestmark = pytest.mark.unit


@pytest.fixture
def app_common(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_RUNS", str(tmp_path / "runs"))
    spec = importlib.util.spec_from_file_location(
        "app_common_under_test", Path(__file__).resolve().parents[2] / "app" / "common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_paths_resolve_inside_the_workspace_or_are_refused(app_common, tmp_path):
    root = (tmp_path / "runs").resolve()
    assert app_common.workspace() == root
    assert app_common.in_workspace("edits/ga", "edit directory") == root / "edits" / "ga"
    assert app_common.in_workspace(str(root / "default"), "study path") == root / "default"
    for outside in ("../elsewhere", "edits/../../x", "/etc", str(tmp_path)):
        with pytest.raises(WorkbenchInputError, match="is outside the app's workspace"):
            app_common.in_workspace(outside, "edit directory")
    root.mkdir(parents=True)
    (root / "link").symlink_to(tmp_path, target_is_directory=True)  # a link that leads out
    with pytest.raises(WorkbenchInputError, match="outside the app's workspace"):
        app_common.in_workspace("link/secret", "edit directory")


def test_the_app_never_writes_over_a_directory_it_did_not_make(app_common, tmp_path):
    target = app_common.in_workspace("mine", "edit directory")
    target.mkdir(parents=True)
    (target / "notes.txt").write_text("mine")
    with pytest.raises(WorkbenchInputError, match="holds other files and no edit"):
        output_dir(target, "edit", "edit.json", option="edit directory", hint="")
    (target / "edit.json").write_text("{}")  # an edit there is replaced
    assert output_dir(target, "edit", "edit.json") == target


def test_the_app_keeps_a_bounded_number_of_models_loaded(app_common, monkeypatch):
    """The app's pipeline lets the least recently used model go beyond `MAX_MODELS`."""
    from types import SimpleNamespace

    import workbench.pipeline as pipeline

    loads = []
    monkeypatch.setattr(pipeline, "load", lambda spec, progress=True: loads.append(spec) or SimpleNamespace(spec=spec))
    pipe = pipeline.Pipeline(progress=False, max_models=2)
    a = pipe.model("a")
    pipe.model("b")
    assert pipe.model("a") is a and loads == ["a", "b"]  # kept: a is now the most recent
    pipe.model("c")  # b, the least recently used, is let go
    assert pipe.model("a") is a and loads == ["a", "b", "c"]
    pipe.model("b")
    assert loads == ["a", "b", "c", "b"]
    assert app_common.MAX_MODELS >= 3  # a model, its oracle and the second oracle fit
    with pytest.raises(WorkbenchInputError, match="max_models=0"):
        pipeline.Pipeline(max_models=0)


def test_the_app_loads_a_local_model_directory_only_from_its_workspace(app_common, tmp_path):
    assert app_common.app_model("testbed:dense?people=40") == "testbed:dense?people=40"  # specs as given
    assert app_common.app_model("org/name") == "org/name"  # a hub id (not a path on this machine)
    inside = app_common.in_workspace("models/mine", "model directory")
    inside.mkdir(parents=True)
    assert app_common.app_model(str(inside)) == str(inside)
    for outside in (str(tmp_path), "/etc", "../elsewhere", "~"):
        with pytest.raises(WorkbenchInputError, match="model directory .* is outside the app's workspace"):
            app_common.app_model(outside)
