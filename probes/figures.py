"""Plotly figures of a `ProbeResult`: pure functions, used by the CLI (HTML files), the
app and the notebooks."""
from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go

from .result import ROLES, ProbeResult

COLOURS = {"original": "#1f77b4", "edited": "#d62728", "oracle": "#2ca02c", "oracle2": "#98df8a"}
DASH = {"forget": "solid", "retain": "dot"}


def _roles(result: ProbeResult) -> list[str]:
    return [r for r in ROLES if r in result.models]


def figure_relearning(result: ProbeResult) -> go.Figure:
    """Accuracy on the held-out forget half during each relearning attack, per model."""
    fig = go.Figure()
    for m in result.family("relearn"):
        if not m.curves:
            continue
        data = m.name.split(".")[1]
        for role in _roles(result):
            pts = m.curves.get(role)
            if not pts:
                continue
            fig.add_trace(go.Scatter(
                x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers",
                name=f"{role}: trained on {'forget half' if data == 'forget' else 'retain facts'}",
                line=dict(color=COLOURS[role], dash=DASH.get(data, "solid"))))
    gaps = []
    for data in ("forget", "retain"):
        try:
            g = result.metric(f"relearn.{data}.gap")
        except KeyError:
            continue
        gaps += [f"{data} gap {r}: {v:+.3f}" for r, v in g.values.items() if r != "oracle" and v is not None]
    fig.update_layout(title="Relearning attack: accuracy on the held-out forget half"
                            + (f"<br><sub>{'; '.join(gaps)}</sub>" if gaps else ""),
                      xaxis_title="fine-tuning step", yaxis_title="accuracy", yaxis_range=[-0.02, 1.02],
                      template="plotly_white")
    return fig


def figure_latent(result: ProbeResult) -> go.Figure:
    """Latent-probe accuracy per layer (and the logit lens where measured)."""
    fig = go.Figure()
    for name, dash in (("latent.best_layer.forget", "solid"), ("prompts.logit_lens.forget", "dot")):
        try:
            m = result.metric(name)
        except KeyError:
            continue
        for role in _roles(result):
            pts = m.curves.get(role)
            if pts:
                fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers",
                                         name=f"{role}: {'linear probe' if dash == 'solid' else 'logit lens'}",
                                         line=dict(color=COLOURS[role], dash=dash)))
    chance = next((d.get("chance") for d in result.details.get("latent", {}).values()), None)
    if chance is not None:
        fig.add_hline(y=chance, line_dash="dash", line_color="grey", annotation_text="chance")
    fig.update_layout(title="Forget attributes read from the residual stream, per layer",
                      xaxis_title="layer", yaxis_title="accuracy on forget entities", yaxis_range=[-0.02, 1.02],
                      template="plotly_white")
    return fig


def figure_traces(result: ProbeResult) -> go.Figure:
    """Per concept vector: cosine and top-token Jaccard between the original and each model."""
    fig = go.Figure()
    for role, d in result.details.get("traces", {}).items():
        rows = d.get("concept", [])
        if not rows:
            continue
        text = [f"{r['site']}<br>before: {' '.join(r['tokens_before'][:6])}<br>after: {' '.join(r['tokens_after'][:6])}"
                for r in rows]
        fig.add_trace(go.Scatter(x=[r["cos"] for r in rows], y=[r["jaccard"] for r in rows], mode="markers",
                                 name=role, text=text, hoverinfo="text",
                                 marker=dict(color=COLOURS.get(role, "grey"), size=9, opacity=0.7)))
    fig.update_layout(title="Parametric traces of the task's concept vectors (1, 1 = untouched)",
                      xaxis_title="cosine(original, model)", yaxis_title="top-k token Jaccard",
                      xaxis_range=[-1.05, 1.05], yaxis_range=[-0.05, 1.05], template="plotly_white")
    return fig


def figure_summary(result: ProbeResult, names: list[str] | None = None) -> go.Figure:
    """Grouped bars of headline metrics per model."""
    names = names or [n for n in ("behaviour.forget.all", "behaviour.retain.all", "behaviour.neighbour.all",
                                  "tofu.model_utility", "muse.auc.mink", "latent.best_layer.forget",
                                  "relearn.forget.final", "prompts.in_context.forget")
                      if any(m.name == n for m in result.metrics)]
    fig = go.Figure()
    for role in _roles(result):
        fig.add_trace(go.Bar(name=role, x=names, y=[result.value(n, role) for n in names],
                             marker_color=COLOURS[role]))
    fig.update_layout(barmode="group", title="Headline metrics", yaxis_range=[0, 1.05], template="plotly_white")
    return fig


FIGURES = {"relearning": figure_relearning, "latent": figure_latent, "traces": figure_traces,
           "summary": figure_summary}


def write_figures(result: ProbeResult, out: str | Path) -> list[Path]:
    """Every figure the result has data for, as self-contained HTML files (each written to a
    temporary file, fsynced and renamed)."""
    from workbench.cache import replacing

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fn in FIGURES.items():
        fig = fn(result)
        if not fig.data:
            continue
        p = out / f"{name}.html"
        with replacing(p) as tmp:
            fig.write_html(tmp, include_plotlyjs=True, full_html=True)
        paths.append(p)
    return paths


def is_figures_dir(path: Path) -> bool:
    """Whether a directory holds only probe figures (what `workbench probe --figures` may
    write into again)."""
    names = {f"{name}.html" for name in FIGURES}
    files = [p for p in Path(path).iterdir() if not p.name.startswith(".")]
    return bool(files) and all(p.is_file() and p.name in names for p in files)
