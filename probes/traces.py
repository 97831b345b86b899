"""The traces family: parametric traces of the forget knowledge in the weights. The task's
concept vectors (MLP value vectors ranked by a concept localiser, given by the caller as
`trace_sites`) and every value vector an edit changed are compared with the original's:
cosine, L2 distance and the Jaccard index of their top-k vocabulary tokens. An edit can erase
the behaviour while the vectors stay intact.

The concept-vector means carry a 95% bootstrap interval over the followed vectors (each vector
one unit): how much the mean depends on which of the task's top vectors were followed. The
weights themselves are measured exactly; an edit's seed spread is the study's to show."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from workbench.errors import WorkbenchInputError
from workbench.models.readouts import top_tokens, value_vectors
from workbench.registry import check_positive
from workbench.sites import NeuronSite

from workbench.stats import mean_interval

from .base import Context, ProbeFamily, mean, register
from .result import ORACLES, Metric

NOT_COMPARABLE = ("independently trained weights: value vectors are not aligned with the "
                  "original's, so a before/after comparison has no meaning")
NO_SITES = "no concept vectors given to follow (the pipeline passes the concept localiser's top sites)"


@dataclass(frozen=True)
class TracesConfig:
    vectors: int = 20  # how many of the task's concept vectors to follow

    def check(self):
        check_positive(self, "vectors")


def _top_k(model) -> int:
    return min(200, max(1, model.config.vocab_size // 20))


def _value_matrix(model, layer: int) -> torch.Tensor:
    return value_vectors(model, layer).float().clone()


def _compare_vectors(model, before: torch.Tensor, after: torch.Tensor, k: int):
    cos = torch.nn.functional.cosine_similarity(before, after, dim=-1)
    l2 = (before - after).norm(dim=-1)
    tb, ta = top_tokens(model, before, k), top_tokens(model, after, k)
    jac = []
    for a, b in zip(tb.tolist(), ta.tolist()):
        sa, sb = set(a), set(b)
        jac.append(len(sa & sb) / len(sa | sb))
    return cos.tolist(), l2.tolist(), jac, tb, ta


@register
class Traces(ProbeFamily):
    name = "traces"
    summary = "parametric traces: concept and touched value vectors, cosine, L2, top-k token Jaccard"
    Config = TracesConfig
    needs_original = True

    def sites(self, ctx: Context) -> list[tuple[int, int]]:
        ranked = [s for s in (ctx.trace_sites or []) if isinstance(s, NeuronSite)]
        return [(s.layer, s.index) for s in ranked[: self.config.vectors]]

    def cache_key(self, ctx: Context) -> dict:
        return {**super().cache_key(ctx), "sites": self.sites(ctx)}

    def prepare(self, ctx: Context) -> None:
        """The original's value vectors (every layer), read before any edit is put on."""
        model = ctx.original.model
        try:
            ctx.shared["vectors"] = [_value_matrix(model, L) for L in range(model.config.num_hidden_layers)]
        except WorkbenchInputError as exc:  # e.g. an MoE: its MLPs are experts, with no dense value vectors
            ctx.shared["vectors_unavailable"] = f"no MLP value vectors to follow here ({exc})"

    def measure(self, ctx: Context, model, tok) -> dict:
        if "vectors_unavailable" in ctx.shared:
            return {"unavailable": ctx.shared["vectors_unavailable"]}
        originals = ctx.shared["vectors"]
        k = _top_k(model)
        sites = self.sites(ctx)
        now = {L: _value_matrix(model, L) for L in range(len(originals))}
        concept = []
        if sites:
            before = torch.stack([originals[L][j] for L, j in sites])
            after = torch.stack([now[L][j] for L, j in sites])
            cos, l2, jac, tb, ta = _compare_vectors(model, before, after, k)
            dec = lambda ids: [tok.decode([i]).strip() for i in ids[:10]]  # noqa: E731
            concept = [{"site": str(NeuronSite(L, j)), "cos": c, "l2": d, "jaccard": jj,
                        "tokens_before": dec(b), "tokens_after": dec(a)}
                       for (L, j), c, d, jj, b, a in zip(sites, cos, l2, jac, tb.tolist(), ta.tolist())]
        touched = {"n": 0, "cos": [], "l2": [], "jaccard": []}
        for L, w0 in enumerate(originals):
            cols = ((now[L] - w0).abs().amax(-1) > 0).nonzero()[:, 0]
            if len(cols):
                cos, l2, jac, _, _ = _compare_vectors(model, w0[cols], now[L][cols], k)
                touched["n"] += len(cols)
                touched["cos"] += cos
                touched["l2"] += l2
                touched["jaccard"] += jac
        return {"concept": concept, "touched": touched, "top_k": k}

    def compare(self, ctx: Context, raws: dict, missing: dict):
        metrics = []
        why = next((x["unavailable"] for x in raws.values() if "unavailable" in x), None)
        if why is not None:
            for what, direction in (("cos", "higher"), ("l2", "lower"), ("jaccard", "higher")):
                for scope in ("concept", "touched"):
                    metrics.append(Metric(f"traces.{scope}.{what}", "traces", direction, notes={r: why for r in raws}))
            return metrics, {}
        for what, direction in (("cos", "higher"), ("l2", "lower"), ("jaccard", "higher")):
            m = Metric(f"traces.concept.{what}", "traces", direction,
                       description=f"task concept vectors: mean {what} between the original and this model "
                                   f"(1 / 0 / 1 = the trace is intact); interval over the followed vectors")
            t = Metric(f"traces.touched.{what}", "traces", direction,
                       description=f"value vectors the edit changed: mean {what} before/after")
            for r, x in raws.items():
                if r in ORACLES:
                    m.notes[r] = t.notes[r] = NOT_COMPARABLE
                    continue
                if x["concept"]:
                    values = [c[what] for c in x["concept"]]
                    m.values[r] = mean(values)
                    m.intervals[r] = list(mean_interval(values, [c["site"] for c in x["concept"]]))
                else:
                    m.notes[r] = NO_SITES
                if x["touched"]["n"]:
                    t.values[r] = mean(x["touched"][what])
                else:
                    t.notes[r] = "no value vector changed in the weights"
            metrics += [m, t]
        metrics.append(Metric("traces.touched.count", "traces", "lower",
                              {r: float(x["touched"]["n"]) for r, x in raws.items() if r not in ORACLES},
                              notes={r: NOT_COMPARABLE for r in raws if r in ORACLES},
                              description="value vectors whose weights changed"))
        return metrics, {r: {"concept": x["concept"], "top_k": x["top_k"]} for r, x in raws.items() if r not in ORACLES}
