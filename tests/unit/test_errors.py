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


def test_a_file_that_is_not_a_study_store_is_one_line(tmp_path):
    from workbench.study.report import write_report

    (tmp_path / "study.sqlite").write_text("not a database " * 200)
    with pytest.raises(WorkbenchInputError, match=r"study store '.*study.sqlite' is not a readable SQLite database"):
        write_report(tmp_path / "study.sqlite")
