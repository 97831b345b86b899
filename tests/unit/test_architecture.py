"""The house rules of docs/architecture.md, checked on the source: the import arrows between
packages (every import, including those inside functions), no cycle between packages, and
the size of modules."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
BASE = ("errors", "registry", "cache", "progress", "hooks", "sites", "stats", "cores")
LOWER = {"base", "tasks", "models"}
# package -> the packages it may import (docs/architecture.md, "Layers")
ALLOWED = {
    "base": {"base"},
    "tasks": {"base"},
    "models": {"base", "tasks"},
    "sae": LOWER,
    "localise": LOWER | {"sae"},
    "edit": LOWER | {"sae", "localise"},
    "probes": LOWER,
    "faithfulness": LOWER | {"sae", "localise", "edit"},
    "pipeline": LOWER | {"sae", "localise", "edit", "faithfulness", "probes"},
    "study": LOWER | {"sae", "localise", "edit", "faithfulness", "probes", "pipeline"},
    "bench": LOWER | {"sae", "localise", "edit", "faithfulness", "probes", "pipeline"},
    "cli": LOWER | {"sae", "localise", "edit", "faithfulness", "probes", "pipeline", "study", "bench"},
    "app": LOWER | {"sae", "localise", "edit", "faithfulness", "probes", "pipeline", "study"},
}


def package_of(module: str) -> str | None:
    """The package of a dotted module name of this project, or None for a third-party one."""
    parts = module.split(".")
    if parts[0] == "probes":
        return "probes"
    if parts[0] in ("app", "common"):  # the app's pages import its `common` module by name
        return "app"
    if parts[0] != "workbench" or len(parts) == 1:
        return None
    return "base" if parts[1] in BASE else parts[1]


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, int]]:
    """(imported module, line) of every import in a file, relative ones resolved."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:  # relative: from the file's package, one level up per extra dot
                parts = package.split(".")
                prefix = ".".join(parts[: len(parts) - (node.level - 1)])
                target = f"{prefix}.{node.module}" if node.module else prefix
            if node.module:
                out.append((target, node.lineno))
            else:  # `from . import a, b`: each name is a module
                out += [(f"{target}.{a.name}", node.lineno) for a in node.names]
    return out


def _sources() -> list[Path]:
    return sorted(p for d in ("workbench", "probes", "app") for p in (ROOT / d).rglob("*.py"))


def arrows() -> dict[tuple[str, str], list[str]]:
    """(from package, to package) -> where ("file:line imports module")."""
    out: dict[tuple[str, str], list[str]] = {}
    for path in _sources():
        src = package_of(_module_name(path))
        for target, line in imports(path):
            dst = package_of(target)
            if src and dst and src != dst:
                out.setdefault((src, dst), []).append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    return out


def test_the_import_resolver_sees_relative_and_function_level_imports():
    found = dict(imports(ROOT / "workbench" / "localise" / "base.py"))
    assert "workbench.models.readouts" in found and "workbench.registry" in found
    assert package_of("workbench.sites") == "base" and package_of("workbench.edit.ablations") == "edit"
    assert package_of("torch.nn") is None and package_of("probes.run") == "probes"
    graph = arrows()
    assert ("pipeline", "probes") in graph and ("edit", "localise") in graph  # the scan sees real arrows


def test_every_import_arrow_is_allowed_by_the_layers():
    bad = {edge: where for edge, where in arrows().items() if edge[1] not in ALLOWED[edge[0]]}
    assert not bad, "\n".join(f"{a} -> {b} is not allowed: {where[0]}" for (a, b), where in bad.items())


def test_no_import_cycle_between_packages():
    graph: dict[str, set[str]] = {}
    for a, b in arrows():
        graph.setdefault(a, set()).add(b)
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            assert state.get(nxt) != 1, "import cycle: " + " -> ".join(path + [nxt])
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2
    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_workbench_never_imports_the_app_and_probes_never_imports_edit_or_study():
    edges = arrows()
    assert not [e for e in edges if e[1] == "app" and e[0] != "app"]
    assert not [e for e in edges if e[0] == "probes" and e[1] in ("edit", "study", "localise")]


def test_modules_stay_small():
    sizes = {p.relative_to(ROOT): len(p.read_text().splitlines()) for p in _sources()}
    big = {str(p): n for p, n in sizes.items() if n > 400 or (p.parts[:2] == ("workbench", "cli") and n > 250)}
    assert not big, f"split these by responsibility: {big}"
