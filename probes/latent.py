"""The latent family: linear probes on the residual stream at the last prompt token, per
layer, trained on retain and neighbour people and tested on forget people. Knowledge that
behaviour no longer shows may still be decodable here."""
from __future__ import annotations

from workbench.models.linear_probe import probe_accuracy
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

    def measure(self, ctx: Context, model, tok) -> dict:
        train = ctx.examples("retain") + ctx.examples("neighbour")
        test = ctx.examples("forget")
        xs_tr = last_token_states(model, tok, [e.prompt for e in train])
        xs_te = last_token_states(model, tok, [e.prompt for e in test])
        known = {_label(e) for e in train}
        coverage = mean([_label(e) in known for e in test]) if test else 0.0
        per_layer = [probe_accuracy(xs_tr[:, L], [_label(e) for e in train], xs_te[:, L], [_label(e) for e in test],
                                    seed=ctx.config.seed) for L in range(xs_tr.shape[1])]
        return {"per_layer": per_layer, "n_train": len(train), "n_test": len(test), "coverage": coverage}

    def compare(self, ctx: Context, raws: dict, missing: dict):
        best = Metric("latent.best_layer.forget", "latent", "reference",
                      {r: max(x["per_layer"]) for r, x in raws.items()},
                      curves={r: [[L, a] for L, a in enumerate(x["per_layer"])] for r, x in raws.items()},
                      description="linear probes on resid_post (last prompt token), trained on retain "
                                  "and neighbour people, accuracy on forget people; best layer")
        last = Metric("latent.last_layer.forget", "latent", "reference",
                      {r: x["per_layer"][-1] for r, x in raws.items()}, description="the same probe at the last layer")
        for r, x in raws.items():
            if x["coverage"] < LOW_COVERAGE:  # e.g. real facts: Paris is the answer of forget facts only
                why = (f"only {x['coverage']:.0%} of the forget answers occur among the retain answers: a "
                       f"retain-trained probe cannot name the others (closed answer sets needed)")
                for m in (best, last):
                    m.values.pop(r, None)
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
