"""Plotly figures of localisations and of what a model knows: pure functions used by the
app, the notebooks and the study report."""
from __future__ import annotations

import plotly.graph_objects as go

from .localisation import Localisation


def figure_scores(loc: Localisation, fraction: float = 0.05) -> go.Figure:
    """Heatmap over layer x component: the share of each cell's sites in the top `fraction`
    (comparable across localisers), with the summed raw score on hover."""
    dens = loc.coarse_density(fraction)
    sums = loc.coarse_scores() if loc.kind != "weight" else {}
    layers = sorted({k[0] for k in dens if k[0] is not None})
    comps = sorted({k[1] for k in dens})
    z = [[dens.get((L, c)) for L in layers] for c in comps]
    hover = [[f"layer {L}, {c}: {100 * (dens.get((L, c)) or 0):.1f}% selected"
              + (f", score sum {sums[(L, c)]:.3g}" if (L, c) in sums else "") for L in layers] for c in comps]
    fig = go.Figure(go.Heatmap(z=z, x=[f"L{L}" for L in layers], y=comps, colorscale="Viridis", zmin=0,
                               text=hover, hoverinfo="text", colorbar=dict(title="selected")))
    name = loc.provenance.get("localiser", loc.name)
    fig.update_layout(title=f"{name}: where the top {fraction:.0%} of {loc.kind} sites lie (layer x component)",
                      template="plotly_white", height=360)
    return fig


def figure_top_sites(loc: Localisation, n: int = 20) -> go.Figure:
    """Bar chart of the n best-scoring sites."""
    ranked = loc.ranked()[:n]
    fig = go.Figure(go.Bar(x=[float(v) for _, v in ranked][::-1], y=[str(s) for s, _ in ranked][::-1],
                           orientation="h"))
    fig.update_layout(title=f"top {len(ranked)} sites", xaxis_title="score", template="plotly_white",
                      height=max(300, 22 * len(ranked)))
    return fig


def figure_routing(forget_affinity, retain_affinity) -> go.Figure:
    """MoE routing view: mean router probability per (layer, expert) on forget text, and its
    difference from retain text (experts the forget set leans on stand out)."""
    from plotly.subplots import make_subplots

    f = forget_affinity.tolist()
    d = (forget_affinity - retain_affinity).tolist()
    experts = [f"E{e}" for e in range(len(f[0]))]
    layers = [f"L{L}" for L in range(len(f))]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("router affinity on forget text", "forget - retain"))
    fig.add_trace(go.Heatmap(z=f, x=experts, y=layers, colorscale="Blues", zmin=0, showscale=False,
                             texttemplate="%{z:.2f}"), row=1, col=1)
    m = max(1e-6, max(abs(v) for row in d for v in row))
    fig.add_trace(go.Heatmap(z=d, x=experts, y=layers, colorscale="RdBu_r", zmin=-m, zmax=m,
                             texttemplate="%{z:+.3f}"), row=1, col=2)
    fig.update_layout(title="MoE routing: which experts the forget facts go through", template="plotly_white",
                      height=360)
    return fig


def figure_knowledge(table: dict) -> go.Figure:
    """What a model knows: accuracy per split and group (surface form) from `knowledge()`."""
    groups = sorted({g for cells in table.values() for g in cells})
    fig = go.Figure()
    for split, cells in table.items():
        fig.add_trace(go.Bar(x=groups, y=[cells[g].accuracy if g in cells else None for g in groups], name=split,
                             text=[f"{cells[g].accuracy:.2f}" if g in cells else "" for g in groups],
                             hovertext=[f"{split}, {g}: n = {cells[g].n}" if g in cells else "" for g in groups]))
    fig.update_layout(title="What the model knows: exact-answer accuracy per split and surface form",
                      barmode="group", yaxis_range=[0, 1.05], template="plotly_white", height=380)
    return fig
