"""The latent family: linear probes on the residual stream at the last prompt token, per
layer, trained on retain and neighbour people and tested on forget people. Knowledge that
behaviour no longer shows may still be decodable here.

Each accuracy carries a 95% bootstrap interval over the forget people (`workbench.stats`). The
best layer is chosen on the same data, so its value is optimistic by the choice of one of a few
layers; the last layer's is not."""
from __future__ import annotations

from workbench.models.linear_probe import probe_correct
from workbench.stats import mean_interval
from workbench.models.readouts import last_token_states
from workbench.tasks.task import Example

from .base import Context, ProbeFamily, mean, register
from .result import Metric


def _label(ex: Example):
    return (ex.fact.relation, ex.fact.answer)


@register
class Latent(ProbeFamily):
    name = "latent"
    summary = "linear probes per layer: retain-trained, tested on forget entities"
    version = 2  # 2: per-example correctness and people, for the intervals

    def measure(self, ctx: Context, model, tok) -> dict:
        train = ctx.examples("retain") + ctx.examples("neighbour")
        test = ctx.examples("forget")
        xs_tr = last_token_states(model, tok, [e.prompt for e in train])
        xs_te = last_token_states(model, tok, [e.prompt for e in test])
        known = {_label(e) for e in train}
        coverage = mean([_label(e) in known for e in test]) if test else 0.0
        correct = [probe_correct(xs_tr[:, L], [_label(e) for e in train], xs_te[:, L], [_label(e) for e in test],
                                 seed=ctx.config.seed) for L in range(xs_tr.shape[1])]
        per_layer = [mean(c) if c else float("nan") for c in correct]
        return {"per_layer": per_layer, "correct": correct, "people": [e.fact.subject for e in test],
                "n_train": len(train), "n_test": len(test), "coverage": coverage}

    def compare(self, ctx: Context, raws: dict, missing: dict):
        best = Metric("latent.best_layer.forget", "latent", "reference",
                      {r: max(x["per_layer"]) for r, x in raws.items()},
                      curves={r: [[L, a] for L, a in enumerate(x["per_layer"])] for r, x in raws.items()},
                      description="linear probes on resid_post (last prompt token), trained on retain "
                                  "and neighbour people, accuracy on forget people; best layer")
        last = Metric("latent.last_layer.forget", "latent", "reference",
                      {r: x["per_layer"][-1] for r, x in raws.items()}, description="the same probe at the last layer")
        for r, x in raws.items():
            best_layer = max(range(len(x["per_layer"])), key=lambda L: x["per_layer"][L])  # noqa: B023
            for m, L in ((best, best_layer), (last, -1)):
                m.intervals[r] = list(mean_interval(x["correct"][L], x["people"]))
            if x["coverage"] < LOW_COVERAGE:  # e.g. real facts: Paris is the answer of forget facts only
                why = (f"only {x['coverage']:.0%} of the forget answers occur among the retain answers: a "
                       f"retain-trained probe cannot name the others (closed answer sets needed)")
                for m in (best, last):
                    m.values.pop(r, None)
                    m.intervals.pop(r, None)
                    m.notes[r] = why
        return [best, last], {r: {"per_layer": x["per_layer"], "chance": _chance(ctx), "coverage": x["coverage"]}
                              for r, x in raws.items()}


LOW_COVERAGE = 0.5


def _chance(ctx: Context) -> float:
    """1 / (number of answers a relation takes among the task's facts), averaged."""
    values: dict[str, set] = {}
    for f in ctx.full_task.all_facts:
        values.setdefault(f.relation, set()).add(f.answer)
    facts = ctx.task.facts("forget")
    return mean([1 / len(values[f.relation]) for f in facts])
