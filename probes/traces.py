"""The traces family: parametric traces of the forget knowledge in the weights. The task's
concept vectors (MLP value vectors ranked by a concept localiser, given by the caller as
`trace_sites`) and every value vector an edit changed are compared with the original's:
cosine, L2 distance and the Jaccard index of their top-k vocabulary tokens. An edit can erase
the behaviour while the vectors stay intact.

The concept-vector means carry a 95% bootstrap interval over the followed vectors (each vector
one unit): how much the mean depends on which of the task's top vectors were followed. The
weights themselves are measured exactly; an edit's seed spread is the study's to show.

**The baseline** (`traces.random.*`): the same metrics for random value vectors matched to the
followed ones by layer and norm (for each followed vector, one of the `POOL` other vectors of its
layer closest to it in norm, seeded by the sites), under the same edit. A whole-model
fine-tuning moves every vector a little, so "the concept vectors survive" is a finding only when
`traces.concept_vs_random.*` (concept mean minus random mean, with the interval of the
difference over vectors) lies above 0 for cosine and Jaccard (below 0 for L2)."""
from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from workbench.errors import WorkbenchInputError
from workbench.models.readouts import top_tokens, value_vectors
from workbench.registry import check_positive
from workbench.sites import NeuronSite

from workbench.stats import difference_interval, mean_interval

from .base import Context, ProbeFamily, mean, register
from .result import ORACLES, Metric

NOT_COMPARABLE = ("independently trained weights: value vectors are not aligned with the "
                  "original's, so a before/after comparison has no meaning")
NO_SITES = "no concept vectors given to follow (the pipeline passes the concept localiser's top sites)"
POOL = 10  # a followed vector's random stand-in is one of the POOL vectors of its layer closest in norm


@dataclass(frozen=True)
class TracesConfig:
    vectors: int = 20  # how many of the task's concept vectors to follow

    def check(self):
        check_positive(self, "vectors")


def _top_k(model) -> int:
    return min(200, max(1, model.config.vocab_size // 20))


def _value_matrix(model, layer: int) -> torch.Tensor:
    return value_vectors(model, layer).float().clone()


def matched_random(originals: list[torch.Tensor], sites: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """One random value vector per followed site: of the same layer, not followed, not drawn
    before, among the `POOL` closest in norm (seeded by the sites, so the same sites give the
    same baseline)."""
    followed = set(sites)
    rng = random.Random("traces|" + ",".join(f"{L}.{j}" for L, j in sites))
    out: list[tuple[int, int]] = []
    for L, j in sites:
        norms = originals[L].norm(dim=-1)
        order = (norms - norms[j]).abs().argsort().tolist()
        pool = [i for i in order if (L, i) not in followed and (L, i) not in out][:POOL]
        out.append((L, rng.choice(pool)))
    return out


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
    version = 2  # 2: the random matched baseline

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
        dec = lambda ids: [tok.decode([i]).strip() for i in ids[:10]]  # noqa: E731

        def follow(pairs):
            if not pairs:
                return []
            before = torch.stack([originals[L][j] for L, j in pairs])
            after = torch.stack([now[L][j] for L, j in pairs])
            cos, l2, jac, tb, ta = _compare_vectors(model, before, after, k)
            return [{"site": str(NeuronSite(L, j)), "cos": c, "l2": d, "jaccard": jj,
                     "tokens_before": dec(b), "tokens_after": dec(a)}
                    for (L, j), c, d, jj, b, a in zip(pairs, cos, l2, jac, tb.tolist(), ta.tolist())]
        concept = follow(sites)
        rand = follow(matched_random(originals, sites)) if sites else []
        touched = {"n": 0, "cos": [], "l2": [], "jaccard": []}
        for L, w0 in enumerate(originals):
            cols = ((now[L] - w0).abs().amax(-1) > 0).nonzero()[:, 0]
            if len(cols):
                cos, l2, jac, _, _ = _compare_vectors(model, w0[cols], now[L][cols], k)
                touched["n"] += len(cols)
                touched["cos"] += cos
                touched["l2"] += l2
                touched["jaccard"] += jac
        return {"concept": concept, "random": rand, "touched": touched, "top_k": k}

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
            b = Metric(f"traces.random.{what}", "traces", direction,
                       description=f"the baseline: random value vectors matched by layer and norm, mean {what} "
                                   f"before/after the same edit; interval over the vectors")
            d = Metric(f"traces.concept_vs_random.{what}", "traces", direction,
                       description=f"concept minus random vectors' mean {what}: the trace survives beyond what "
                                   f"the edit leaves of any vector only where its interval excludes 0")
            for r, x in raws.items():
                if r in ORACLES:
                    m.notes[r] = t.notes[r] = b.notes[r] = d.notes[r] = NOT_COMPARABLE
                    continue
                if x["concept"]:
                    values = [c[what] for c in x["concept"]]
                    m.values[r] = mean(values)
                    m.intervals[r] = list(mean_interval(values, [c["site"] for c in x["concept"]]))
                    rvals = [c[what] for c in x.get("random", [])]
                    if rvals:
                        b.values[r] = mean(rvals)
                        b.intervals[r] = list(mean_interval(rvals, [c["site"] for c in x["random"]]))
                        d.values[r] = m.values[r] - b.values[r]
                        d.intervals[r] = list(difference_interval(values, [c["site"] for c in x["concept"]], rvals,
                                                                  [c["site"] for c in x["random"]]))
                else:
                    m.notes[r] = b.notes[r] = d.notes[r] = NO_SITES
                if x["touched"]["n"]:
                    t.values[r] = mean(x["touched"][what])
                else:
                    t.notes[r] = "no value vector changed in the weights"
            metrics += [m, b, d, t]
        metrics.append(Metric("traces.touched.count", "traces", "lower",
                              {r: float(x["touched"]["n"]) for r, x in raws.items() if r not in ORACLES},
                              notes={r: NOT_COMPARABLE for r in raws if r in ORACLES},
                              description="value vectors whose weights changed"))
        return metrics, {r: {"concept": x["concept"], "random": x.get("random", []), "top_k": x["top_k"]}
                         for r, x in raws.items() if r not in ORACLES}
