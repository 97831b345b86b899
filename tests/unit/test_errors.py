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
