"""The study report: pure `figure_*` functions over the store (plotly), a headline table, and
one self-contained HTML file (`write_report`) with every figure and a sortable table.

The app and the notebooks use the same functions: `study_rows(store)` (in `rows`, re-exported
here) gives one flat row per cell (its coordinates and headline metrics with their intervals),
the figures take those rows (or the store).
"""
from __future__ import annotations

import html
import json
import math
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..cache import replacing
from ..errors import MissingInputError
from ..localise import Localisation, agreement_matrix
from .rows import (COLUMNS, HEADLINE, REFERENCE_ROLES, below_floor, floor_warnings, headline_table,  # noqa: F401
                   reference_rows, seed_summary, seed_table, study_rows)
from .store import Store

_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22", "#17becf")
_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x", "star", "cross", "triangle-down", "pentagon")


def _label(row: dict) -> str:
    b = "" if row.get("budget") is None else f" @{row['budget']:g}"
    return f"{row['localiser']} -> {row['operator']}{b} (seed {row['seed']})"


def _models(rows) -> list[str]:
    return list(dict.fromkeys(r["model"] for r in rows))


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (lower forget, higher retain),
    ordered by retain accuracy."""
    front = []
    for i, (f, r) in enumerate(points):
        if not any((f2 <= f and r2 >= r) and (f2 < f or r2 > r) for j, (f2, r2) in enumerate(points) if j != i):
            front.append(i)
    return sorted(front, key=lambda i: points[i][1])


def figure_pareto(rows: list[dict], references: list[dict] | None = None) -> go.Figure:
    """Forget vs retain accuracy of every edited cell, one panel per model; colour = the
    localiser, symbol = the operator; the original and the oracle as reference stars; the
    Pareto front (lower forget, higher retain) as a line; error bars are the 95% intervals over
    people where the store has them."""
    rows = [r for r in rows if r["status"] == "done" and r["forget"] is not None and r["retain"] is not None]
    models = _models(rows) or ["(no finished cell)"]
    fig = make_subplots(rows=1, cols=len(models), subplot_titles=models, shared_yaxes=True)
    locs = list(dict.fromkeys(r["localiser"] for r in rows))
    ops = list(dict.fromkeys(r["operator"] for r in rows))
    shown = set()
    for col, model in enumerate(models, start=1):
        mine = [r for r in rows if r["model"] == model]
        for r in mine:
            key = (r["localiser"], r["operator"])
            fig.add_trace(go.Scatter(
                x=[r["retain"]], y=[r["forget"]], mode="markers",
                error_x=_error_bar(r, "retain"), error_y=_error_bar(r, "forget"),
                marker=dict(size=11, color=_PALETTE[locs.index(r["localiser"]) % len(_PALETTE)],
                            symbol=_SYMBOLS[ops.index(r["operator"]) % len(_SYMBOLS)],
                            line=dict(width=1, color="#333")),
                name=f"{r['localiser']} -> {r['operator']}", legendgroup=str(key), showlegend=key not in shown,
                hovertext=f"{model}<br>{_label(r)}<br>forget {r['forget']:.3f} retain {r['retain']:.3f}",
                hoverinfo="text"), row=1, col=col)
            shown.add(key)
        front = pareto_front([(r["forget"], r["retain"]) for r in mine])
        if len(front) > 1:
            fig.add_trace(go.Scatter(x=[mine[i]["retain"] for i in front], y=[mine[i]["forget"] for i in front],
                                     mode="lines", line=dict(color="#999", dash="dot"), name="Pareto front",
                                     legendgroup="front", showlegend="front" not in shown, hoverinfo="skip"),
                          row=1, col=col)
            shown.add("front")
        for ref in (references or []):
            if ref["model"] != model or ref["forget"] is None or ref["retain"] is None:
                continue
            fig.add_trace(go.Scatter(
                x=[ref["retain"]], y=[ref["forget"]], mode="markers+text", text=[ref["role"]],
                error_x=_error_bar(ref, "retain"), error_y=_error_bar(ref, "forget"),
                textposition="top center", marker=dict(size=16, symbol="star",
                                                       color={"original": "#000", "oracle": "#2ca02c"}.get(ref["role"], "#98df8a")),
                name=ref["role"], legendgroup=ref["role"], showlegend=ref["role"] not in shown,
                hovertext=f"{ref['role']}: forget {ref['forget']:.3f} retain {ref['retain']:.3f}", hoverinfo="text"),
                row=1, col=col)
            shown.add(ref["role"])
        fig.update_xaxes(title_text="retain accuracy, held-out people (higher is better)", range=[-0.02, 1.02],
                         row=1, col=col)
    fig.update_yaxes(title_text="forget accuracy, held-out forms (lower is better)", range=[-0.02, 1.02], row=1, col=1)
    fig.update_layout(title="Forget vs retain accuracy per localiser and operator", template="plotly_white",
                      height=480)
    return fig


def _error_bar(row: dict, col: str) -> dict | None:
    """A plotly error bar from the row's `<col>_low`/`<col>_high` (None: no interval measured)."""
    lo, hi, v = row.get(f"{col}_low"), row.get(f"{col}_high"), row.get(col)
    if lo is None or hi is None or v is None:
        return None
    return dict(type="data", symmetric=False, array=[max(hi - v, 0)], arrayminus=[max(v - lo, 0)],
                thickness=1, width=3, color="#888")


def figure_study_relearning(store: Store, ids: list[str] | None = None, metric: str = "relearn.forget.final") -> go.Figure:
    """Relearning-attack curves of every edited cell against the original and the oracle
    (accuracy on the held-out forget half per fine-tuning step), one panel per model."""
    cells = {c["cell_id"]: c for c in store.cells(ids) if c["status"] == "done"}
    curves = [k for k in store.curves(metric) if k["cell_id"] in cells]
    models = list(dict.fromkeys(cells[k["cell_id"]]["model"] for k in curves)) or ["(no relearning curve)"]
    fig = make_subplots(rows=1, cols=len(models), subplot_titles=models, shared_yaxes=True)
    shown = set()
    for col, model in enumerate(models, start=1):
        refs_done = set()
        for n, k in enumerate(k for k in curves if cells[k["cell_id"]]["model"] == model):
            c = cells[k["cell_id"]]
            xs, ys = [p[0] for p in k["points"]], [p[1] for p in k["points"]]
            if k["role"] == "edited":
                name = _label(c)
                fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=name, legendgroup=name,
                                         showlegend=name not in shown,
                                         line=dict(color=_PALETTE[n % len(_PALETTE)])), row=1, col=col)
                shown.add(name)
            elif k["role"] not in refs_done:  # the original and the oracle are the same in every cell
                refs_done.add(k["role"])
                fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=k["role"], legendgroup=k["role"],
                                         showlegend=k["role"] not in shown,
                                         line=dict(color="#000" if k["role"] == "original" else "#2ca02c",
                                                   width=4, dash="dash")), row=1, col=col)
                shown.add(k["role"])
        fig.update_xaxes(title_text="relearning step", row=1, col=col)
    fig.update_yaxes(title_text="forget accuracy (held-out half)", range=[-0.02, 1.02], row=1, col=1)
    fig.update_layout(title="Relearning attacks: does the knowledge come back?", template="plotly_white", height=480)
    return fig


def figure_study_traces(rows: list[dict]) -> go.Figure:
    """Parametric traces per cell: how intact the task's concept vectors are after the edit
    (cosine and top-token Jaccard with the original; 1 = untouched), next to forget accuracy."""
    rows = [r for r in rows if r["status"] == "done" and r.get("concept_cos") is not None]
    labels = [f"{r['model']}<br>{_label(r)}" for r in rows]
    fig = go.Figure()
    for col, name, colour in (("concept_cos", "concept-vector cosine", "#1f77b4"),
                              ("concept_jaccard", "top-token Jaccard", "#ff7f0e"),
                              ("forget", "forget accuracy", "#d62728")):
        fig.add_trace(go.Bar(x=labels, y=[r[col] for r in rows], name=name, marker_color=colour))
    fig.update_layout(title="Parametric traces: behaviour can go while the concept vectors stay",
                      barmode="group", yaxis_range=[0, 1.05], template="plotly_white", height=480,
                      xaxis_tickangle=-30)
    return fig


def study_agreement(store: Store, ids: list[str] | None = None, fraction: float = 0.05) -> dict[str, dict]:
    """Per model: the localisers' labels and the Spearman matrix of their (layer, component)
    selection densities (`workbench.localise.agreement_matrix`)."""

    per_model: dict[str, dict[str, str]] = {}
    for c in store.cells(ids):
        if c["status"] == "done" and c["localisation"] and Path(c["localisation"]).is_dir():
            per_model.setdefault(c["model"], {}).setdefault(c["localiser"], c["localisation"])
    out = {}
    for model, paths in per_model.items():
        if len(paths) >= 2:
            out[model] = agreement_matrix({label: Localisation.load(p) for label, p in paths.items()}, fraction)
    return out


def figure_agreement(matrices: dict[str, dict]) -> go.Figure:
    """Heatmaps of localiser agreement (Spearman over layer x component), one per model."""
    models = list(matrices) or ["(fewer than two localisers)"]
    fig = make_subplots(rows=1, cols=len(models), subplot_titles=models)
    for col, model in enumerate(models, start=1):
        if model not in matrices:
            continue
        m = matrices[model]
        fig.add_trace(go.Heatmap(z=m["spearman"], x=m["names"], y=m["names"], zmin=-1, zmax=1,
                                 colorscale="RdBu", showscale=col == len(models),
                                 text=[[("" if v is None else f"{v:.2f}") for v in row] for row in m["spearman"]],
                                 texttemplate="%{text}", hovertemplate="%{y} vs %{x}: %{z:.2f}<extra></extra>"),
                      row=1, col=col)
    fig.update_layout(title="Localiser agreement (Spearman of selection density per layer x component)",
                      template="plotly_white", height=460)
    return fig


FIGURES = {"pareto": "Forget vs retain (Pareto)", "relearning": "Relearning attacks against the oracle",
           "traces": "Parametric traces", "agreement": "Localiser agreement"}


def study_figures(store: Store, ids: list[str] | None = None) -> dict[str, go.Figure]:
    rows = study_rows(store, ids)
    return {"pareto": figure_pareto(rows, reference_rows(store, ids)),
            "relearning": figure_study_relearning(store, ids),
            "traces": figure_study_traces(rows),
            "agreement": figure_agreement(study_agreement(store, ids))}


def write_report(store_path: str | Path, out: str | Path | None = None, ids: list[str] | None = None,
                 title: str | None = None) -> Path:
    """One self-contained HTML file (plotly.js inlined once) with every figure and the table."""
    store_path = Path(store_path)
    if not store_path.is_file():
        raise MissingInputError(f"study store {str(store_path)!r} does not exist: run the study first "
                                f"(`workbench study run`)")
    out = Path(out) if out is not None else store_path.parent / "report.html"
    from probes.result import NOISE_FLOOR

    with Store(store_path) as store:
        name = title or store.meta("name") or store_path.parent.name
        rows = study_rows(store, ids)
        refs = reference_rows(store, ids)
        figs = study_figures(store, ids)
    parts = []
    for i, (key, fig) in enumerate(figs.items()):
        parts.append(f"<h2>{html.escape(FIGURES[key])}</h2>")
        parts.append(fig.to_html(full_html=False, include_plotlyjs=(i == 0), div_id=f"fig-{key}"))
    done = sum(r["status"] == "done" for r in rows)
    failed = [r for r in rows if r["status"] == "failed"]
    summary = seed_summary(rows)
    body = "\n".join([
        f"<h1>Study {html.escape(name)}</h1>",
        f"<p>{done} cells done, {len(failed)} failed. Values are the edited model's; the original's "
        f"and the oracle's are the reference rows. Click a column header to sort.</p>",
        *[f"<p class='warning'>Warning: {html.escape(w)}.</p>" for w in floor_warnings(rows)],
        _table_html(headline_table(rows, refs)),
        *([f"<p>{html.escape(NOISE_FLOOR)}</p>"] if any(r["role"] == "oracle2" for r in refs) else []),
        *(["<h2>Over seeds: mean and standard deviation</h2>", _table_html(seed_table(summary))]
          if any(r["seeds"] > 1 for r in summary) else []),
        *parts,
        *(["<h2>Failed cells</h2><ul>" + "".join(
            f"<li>{html.escape(_label(r))} on {html.escape(r['model'])}: {html.escape(r['error'] or '')}</li>"
            for r in failed) + "</ul>"] if failed else []),
    ])
    out.parent.mkdir(parents=True, exist_ok=True)
    with replacing(out) as tmp:
        tmp.write_text(_PAGE.replace("{title}", html.escape(name)).replace("{body}", body))
    return out


def is_report(path: str | Path) -> bool:
    """Whether a file is a study report (what `study report --html` may replace); reports
    written before the generator tag are known by their title."""
    from ..cache import head_holds

    return head_holds(Path(path), '<meta name="generator" content="unlearning-workbench study report">') or \
        head_holds(Path(path), "<title>Study ", limit=400)


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if not math.isfinite(v):
            return ""
        return f"{v:.2e}" if v != 0 and abs(v) < 1e-3 else f"{v:.3f}"
    return str(v)


def _table_html(rows: list[dict]) -> str:
    if not rows:
        return "<p>(no cell stored yet)</p>"
    cols = list(rows[0])
    head = "".join(f"<th onclick='sortTable(this)'>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td data-v='{html.escape(json.dumps(r.get(c)))}'>{html.escape(_fmt(r.get(c)))}</td>"
                         for c in cols) + "</tr>" for r in rows)
    return f"<table id='cells' class='sortable'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><meta name="generator" content="unlearning-workbench study report">
<title>Study {title}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; }
.warning { color: #a40000; font-weight: bold; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: right; }
th { background: #f0f0f0; cursor: pointer; }
td:nth-child(-n+3) { text-align: left; }
</style>
<script>
function sortTable(th) {
  const table = th.closest('table'), body = table.tBodies[0];
  const i = Array.from(th.parentNode.children).indexOf(th);
  const asc = th.dataset.asc !== '1'; th.dataset.asc = asc ? '1' : '0';
  const key = td => { const v = JSON.parse(td.dataset.v); return v === null ? (asc ? Infinity : -Infinity) : v; };
  Array.from(body.rows).sort((a, b) => {
    const x = key(a.cells[i]), y = key(b.cells[i]);
    return (x > y ? 1 : x < y ? -1 : 0) * (asc ? 1 : -1);
  }).forEach(r => body.appendChild(r));
}
</script></head><body>
{body}
</body></html>
"""
