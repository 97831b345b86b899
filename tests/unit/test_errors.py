"""User mistakes are one line; bugs are bugs (the CLI's error contract), without a model."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from workbench.cli import app
from workbench.errors import MissingInputError, WorkbenchInputError

pytestmark = pytest.mark.unit


def _run(*args):
    return CliRunner().invoke(app, list(args))


def test_a_bad_user_input_is_one_line_and_exit_code_2():
    r = _run("sites", "parse", "blocks.1.attn.head")
    assert r.exit_code == 2, r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert lines == [lines[0]] and lines[0].startswith("error: invalid site address 'blocks.1.attn.head'")
    assert "Traceback" not in r.output


def test_a_bug_raising_valueerror_shows_as_a_bug_with_its_traceback(monkeypatch):
    import workbench.sites

    def broken(text):  # a library function with a bug: a ValueError that is not the user's fault
        raise ValueError("internal invariant broken")
    monkeypatch.setattr(workbench.sites.Site, "parse", staticmethod(broken))
    r = _run("sites", "parse", "blocks.1.attn.head.2")
    assert r.exit_code == 1, r.output
    assert "Traceback" in r.output and "ValueError: internal invariant broken" in r.output
    assert "bug: this is an error in the workbench, not in your input" in r.output
    assert "error: internal invariant broken" not in r.output  # never dressed up as a user mistake


def test_input_errors_are_value_errors_and_missing_files_are_file_errors():
    assert issubclass(WorkbenchInputError, ValueError)
    assert issubclass(MissingInputError, WorkbenchInputError) and issubclass(MissingInputError, FileNotFoundError)
    r = _run("agreement", "/nonexistent/a", "/nonexistent/b")
    assert r.exit_code == 2 and "missing localisation.json" in r.output


@pytest.mark.parametrize("args, marker", [
    (("localise", "--method", "wagle"), "localisation.json"),
    (("edit", "--operator", "ga"), "edit.json"),
    (("edit", "--operator", "ga", "--export"), "config.json"),
])
def test_an_output_directory_that_holds_other_files_is_refused_before_any_work(tmp_path, monkeypatch, args, marker):
    """`--out DIR` (and `--export DIR`) never deletes or mixes into a directory the workbench did
    not write: a non-empty directory without the artefact's marker file is refused with one line,
    before any model loads, and everything in it is left as it was."""
    import workbench.cli.edit
    import workbench.cli.localise

    def no_model(*a, **k):
        raise AssertionError("a model was loaded before the output directory was checked")
    for module in (workbench.cli.edit, workbench.cli.localise):
        monkeypatch.setattr(module, "model_and_task", no_model)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    opt = [] if args[-1] == "--export" else ["--out"]
    r = _run(*args, *opt, str(mine))
    assert r.exit_code == 2, r.output
    assert "holds other files and no" in r.output and f"({marker})" in r.output and "--force" in r.output, r.output
    assert (mine / "thesis.tex").read_text() == "years of work" and sorted(p.name for p in mine.iterdir()) == ["thesis.tex"]
    (tmp_path / "afile").write_text("x")  # a file where a directory is expected
    r = _run(*args, *opt, str(tmp_path / "afile"))
    assert r.exit_code == 2 and "is a file: expected a directory" in r.output, r.output


@pytest.mark.parametrize("args, option, kind", [
    (("probe", "--json"), "--json", "probe result"),
    (("study", "export", "default", "--file"), "--file", "study export"),
    (("study", "report", "default", "--html"), "--html", "study report"),
])
def test_an_output_file_the_workbench_did_not_write_is_refused_before_any_work(tmp_path, monkeypatch, args, option,
                                                                                 kind):
    """`--json`, `study export --file` and `study report --html` replace only a file of the same
    kind the workbench wrote: anything else is refused with one line before any model or store is
    read, and left as it was; a directory is never a file name."""
    import workbench.cli.probe
    import workbench.cli.study

    def no_work(*a, **k):
        raise AssertionError("work started before the output file was checked")
    monkeypatch.setattr(workbench.cli.probe, "model_and_task", no_work)
    monkeypatch.setattr(workbench.cli.study, "_study_store", no_work)
    mine = tmp_path / ("notes.csv" if kind == "study export" else "notes.html" if kind == "study report" else "n.json")
    mine.write_text("years of work")
    r = _run(*args, str(mine))
    assert r.exit_code == 2, r.output
    assert f"{option} {str(mine)!r} already exists and is not a {kind} written by the workbench" in r.output, r.output
    assert "--force" in r.output and mine.read_text() == "years of work"
    r = _run(*args, str(tmp_path))
    assert r.exit_code == 2 and "is a directory: expected a file name" in r.output, r.output


def test_probe_figures_go_only_into_a_directory_of_probe_figures(tmp_path, monkeypatch):
    import workbench.cli.probe
    from probes.figures import is_figures_dir

    def no_model(*a, **k):
        raise AssertionError("a model was loaded before --figures was checked")
    monkeypatch.setattr(workbench.cli.probe, "model_and_task", no_model)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    r = _run("probe", "--figures", str(mine))
    assert r.exit_code == 2 and "--figures" in r.output and "holds other files and no probe figures" in r.output, \
        r.output
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]
    from workbench.cache import output_dir

    figs = tmp_path / "figs"  # a new directory, then one of probe figures: both written into
    assert output_dir(figs, "probe figures", is_figures_dir) == figs
    figs.mkdir()
    (figs / "summary.html").write_text("<html></html>")
    assert is_figures_dir(figs)
    (figs / "summary.html.bak").write_text("x")
    assert not is_figures_dir(figs)


def test_outputs_of_the_same_kind_are_replaced_and_force_replaces_any_file(tmp_path):
    """The recognisers know the files the workbench writes (and nothing else), so a second run
    to the same name replaces its own output; `--force` replaces another file."""
    from probes.result import ProbeResult
    from workbench.cli.study import _is_export
    from workbench.study import Store
    from workbench.study.report import is_report, write_report

    result = ProbeResult(task="t", task_hash="h", models={"original": "m"}, metrics=[])
    saved = result.save(tmp_path / "r.json")
    assert ProbeResult.is_result_file(saved) and not ProbeResult.is_result_file(tmp_path / "missing.json")
    (tmp_path / "other.json").write_text('{"metrics": "mine"}')
    assert not ProbeResult.is_result_file(tmp_path / "other.json")
    run = tmp_path / "run"
    run.mkdir()
    with Store(run / "study.sqlite") as store:
        store.set_meta("name", "empty")
    report = write_report(run / "study.sqlite", tmp_path / "report.html")
    assert is_report(report) and not is_report(saved)
    csv = tmp_path / "cells.csv"
    for attempt in range(2):  # the second export replaces the first
        r = _run("study", "export", str(run), "--file", str(csv))
        assert r.exit_code == 0, r.output
    assert _is_export(csv) and not _is_export(saved)
    (tmp_path / "notes.csv").write_text("name,score\n")
    assert _run("study", "export", str(run), "--file", str(tmp_path / "notes.csv")).exit_code == 2
    r = _run("study", "export", str(run), "--file", str(tmp_path / "notes.csv"), "--force")
    assert r.exit_code == 0 and _is_export(tmp_path / "notes.csv"), r.output
    parquet = tmp_path / "cells.parquet"
    assert _run("study", "export", str(run), "--file", str(parquet)).exit_code == 0 and _is_export(parquet)
    assert not list(tmp_path.glob(".*.tmp")), "a temporary file was left behind"


def test_a_file_that_is_not_a_study_store_is_one_line(tmp_path):
    from workbench.study.report import write_report

    (tmp_path / "study.sqlite").write_text("not a database " * 200)
    with pytest.raises(WorkbenchInputError, match=r"study store '.*study.sqlite' is not a readable SQLite database"):
        write_report(tmp_path / "study.sqlite")
