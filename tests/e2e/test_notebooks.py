"""The three notebooks run top to bottom (nbclient, a real kernel) on the embedded default.
Committed notebooks carry no outputs: every output is produced by this run, and each
notebook checks that its closing conclusion still matches the numbers it measured."""
import ast
import json
import os
import re
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def private_names(source: str) -> list[str]:
    """Private names (a leading underscore, dunders aside) a notebook's code imports or reaches."""
    def private(name: str) -> bool:
        return any(p.startswith("_") and not (p.startswith("__") and p.endswith("__")) for p in name.split("."))

    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            found += [f"from {node.module} import {a.name}" for a in node.names
                      if private(node.module or "") or private(a.name)]
        elif isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if private(a.name)]
        elif isinstance(node, ast.Attribute) and private(node.attr):
            found.append(f".{node.attr}")
    return found


def test_the_private_name_check_finds_what_it_should():
    assert private_names("from workbench.localise import a, _b\nimport x._y\nz._c\nq.__class__") == [
        "from workbench.localise import _b", "import x._y", "._c"]
    assert private_names("from workbench.models import (\n    load,\n    _hidden,\n)") == [
        "from workbench.models import _hidden"]


def test_there_are_three_notebooks_without_stale_outputs():
    assert [p.name[:2] for p in NOTEBOOKS] == ["1_", "2_", "3_"]
    for path in NOTEBOOKS:
        book = json.loads(path.read_text())
        code = [c for c in book["cells"] if c["cell_type"] == "code"]
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), path.name
        last = book["cells"][-1]  # the conclusion: its statements asserted, its numbers this run's
        assert last["cell_type"] == "code" and 'Markdown(f"""## Conclusion' in "".join(last["source"]), path.name
        assert "assert " in "".join(last["source"]), path.name
        source = "\n".join("".join(c["source"]) for c in code)
        assert private_names(source) == [], f"{path.name} uses private names: {private_names(source)}"


def test_committed_notebooks_are_what_the_generator_writes(tmp_path):
    """The .ipynb files are generated: an edit made only to a notebook (or a generator change
    that was not regenerated) is caught here."""
    import subprocess
    import sys

    generator = NOTEBOOKS[0].parent / ".make_notebooks.py"
    done = subprocess.run([sys.executable, str(generator), str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    for path in NOTEBOOKS:
        assert (tmp_path / path.name).read_text() == path.read_text(), f"{path.name}: rerun {generator.name}"


def test_the_generator_refuses_a_conclusion_that_compares_point_values():
    """A conclusion may compare two measured values only through their 95% interval bounds
    (`beyond`: a's high below b's low); a point-to-point comparison stops the generator, as a
    number written into the text does. A single value against a threshold stays allowed."""
    generator = NOTEBOOKS[0].parent / ".make_notebooks.py"
    source = generator.read_text()
    rules: dict = {"__file__": str(generator), "__name__": "notebook_rules"}
    exec(compile(source[:source.index("RELATIONS_ONE = [")], str(generator), "exec"), rules)  # the rules only
    point = rules["point_comparisons"]
    assert point('assert m["npo forget"] < m["oracle forget"]') == ["m['npo forget'] < m['oracle forget']"]
    assert point('assert m[W + " forget"] > 2 * max(m["a"], m["b"]) + 0.1')  # arithmetic does not hide it
    assert point('assert m[f"{n} forget"] < m[f"{n} retain high"]')  # a point against a bound is still a point
    assert point('beyond = lambda a, b: m[f"{a} high"] < m[f"{b} low"]') == []  # interval against interval
    assert point('assert m["x low"] > m["y high"] and m["spearman a~b"] > 0.8') == []  # a threshold
    assert point('text = "above" if m["fq"] > ALPHA else "below"') == []
    with pytest.raises(SystemExit, match="point to point"):
        rules["conclusion"](['assert m["npo forget"] < m["oracle forget"]'], "NPO forgets more than the oracle.")
    with pytest.raises(SystemExit, match="writes the number 0.5"):
        rules["conclusion"]([], "The AUC is 0.5.")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, tmp_path, monkeypatch, default_dense, default_dense_oracle, default_moe):
    import nbformat
    from nbclient import NotebookClient

    book = nbformat.read(path, as_version=4)
    if "WORKBENCH_RUNS" not in os.environ:  # the kernel inherits this process's environment
        monkeypatch.setenv("WORKBENCH_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("WORKBENCH_NB_SMOLLM2", "1")  # notebook 1's optional SmolLM2 section runs too
    client = NotebookClient(book, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError naming the cell on any failure (the conclusion's asserts included)
    out = Path(__file__).resolve().parents[2] / "test-output" / "notebooks"
    out.mkdir(parents=True, exist_ok=True)
    nbformat.write(book, out / path.name)  # the executed copy, for reading
    outputs = [o for c in book.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    conclusion = "".join(o.get("data", {}).get("text/markdown", "") for o in book.cells[-1].get("outputs", []))
    assert conclusion.startswith("## Conclusion") and re.search(r"\d\.\d{3}", conclusion), conclusion[:300]
    figures = sum("Plotly.newPlot" in o.get("data", {}).get("text/html", "") for o in outputs)
    shown = sum(".show()" in line for c in book.cells if c.cell_type == "code" for line in c.source.splitlines())
    assert figures >= shown > 0, f"{figures} plotly figures drawn for {shown} .show() calls"
