"""The three notebooks run top to bottom (nbclient, a real kernel) on the embedded default.
Committed notebooks carry no outputs: every output is produced by this run, and each
notebook checks that its closing conclusion still matches the numbers it measured."""
import json
import os
import re
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
PRIVATE = re.compile(r"^\s*(from|import)\s+[\w.]*\b_\w+|import\s+_\w+|\b\w+\._[a-z]\w*\(", re.M)  # _private names


def test_there_are_three_notebooks_without_stale_outputs():
    assert [p.name[:2] for p in NOTEBOOKS] == ["1_", "2_", "3_"]
    for path in NOTEBOOKS:
        book = json.loads(path.read_text())
        code = [c for c in book["cells"] if c["cell_type"] == "code"]
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), path.name
        last = book["cells"][-1]
        assert last["cell_type"] == "markdown" and any(ch.isdigit() for ch in "".join(last["source"])), path.name
        source = "\n".join("".join(c["source"]) for c in code)
        assert not PRIVATE.search(source), f"{path.name} uses a private name: {PRIVATE.search(source).group(0)}"


def test_committed_notebooks_are_what_the_generator_writes(tmp_path):
    """The .ipynb files are generated: an edit made only to a notebook (or a generator change
    that was not regenerated) is caught here."""
    import subprocess
    import sys

    generator = NOTEBOOKS[0].parent / ".make_notebooks.py"
    subprocess.run([sys.executable, str(generator), str(tmp_path)], check=True, capture_output=True)
    for path in NOTEBOOKS:
        assert (tmp_path / path.name).read_text() == path.read_text(), f"{path.name}: rerun {generator.name}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, tmp_path, monkeypatch, default_dense, default_dense_oracle, default_moe):
    import nbformat
    from nbclient import NotebookClient

    book = nbformat.read(path, as_version=4)
    if "WORKBENCH_RUNS" not in os.environ:  # the kernel inherits this process's environment
        monkeypatch.setenv("WORKBENCH_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("WORKBENCH_NB_SMOLLM2", "1")  # notebook 1's optional SmolLM2 section runs too
    client = NotebookClient(book, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError naming the cell on any failure (the claims checks included)
    out = Path(__file__).resolve().parents[2] / "test-output" / "notebooks"
    out.mkdir(parents=True, exist_ok=True)
    nbformat.write(book, out / path.name)  # the executed copy, for reading
    outputs = [o for c in book.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any("plotly" in json.dumps(o.get("data", {})) for o in outputs), "no figure was drawn"
