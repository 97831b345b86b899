"""The MUSE family (Shi et al. 2024): VerbMem and KnowMem (ROUGE-L of greedy continuations and
answers), and membership inference (LOSS, zlib, Min-K%, Min-K%++) with its AUC and PrivLeak
against the oracle.

Members are the forget facts; non-members are the facts of the task's **holdout people**, people
no model was trained on (MUSE's and TOFU's holdout sets; the testbed world draws as many as it has
forget people). A task without holdout people (a real model's) falls back to the forget facts
with a wrong answer, and says so in each metric's notes. Where there are holdout people, that
forget-vs-wrong-answer comparison is reported apart as a knowledge test, `muse.distractor_auc`.

Conventions follow open-unlearning (`evals/metrics/mia/*.py`, `evals/metrics/privacy.py`): Min-K%
averages the lowest int(k x n) token log-probabilities (at least one), Min-K%++ standardises each
token's log-probability by the mean and standard deviation (variance clamped at 1e-6) of the
model's log-probability at that position, and PrivLeak is MUSE's (see `workbench.stats.privleak`).
Every AUC and PrivLeak carries a 95% bootstrap interval over the forget people (a person's member
and non-member texts are resampled together; PrivLeak resamples the model and the oracle on the
same draw)."""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

from workbench.errors import WorkbenchInputError
from workbench.stats import auc, auc_statistic, cluster_bootstrap, paired_items, privleak

from .base import NO_ORACLE, Context, ProbeFamily, distractor_facts, mean, register
from .result import Metric
from .text import greedy, rouge_l, token_stats


ATTACKS = ("loss", "zlib", "mink", "minkpp")


def _attack_scores(stats, texts: list[str], k: float) -> dict[str, list[float]]:
    """Membership scores, higher = more likely a member."""
    out = {a: [] for a in ATTACKS}
    for st, text in zip(stats, texts):
        nll = [-x for x in st.logp]
        n = max(1, int(k * len(st.logp)))
        out["loss"].append(-mean(nll))
        out["zlib"].append(-mean(nll) / len(zlib.compress(text.encode())))
        out["mink"].append(mean(sorted(st.logp)[:n]))
        z = [(lp - m) / math.sqrt(max(s * s, 1e-6)) for lp, m, s in zip(st.logp, st.mu, st.sigma)]
        out["minkpp"].append(mean(sorted(z)[:n]))
    return out


@dataclass(frozen=True)
class MuseConfig:
    mink_k: float = 0.4  # Min-K% / Min-K%++ fraction of tokens (MUSE PrivLeak uses 40%)

    def check(self):
        if not 0 < self.mink_k <= 1:
            raise WorkbenchInputError(f"option mink_k={self.mink_k}: expected a fraction in (0, 1]")


@register
class Muse(ProbeFamily):
    name = "muse"
    summary = "MUSE: VerbMem, KnowMem; membership inference (LOSS, zlib, Min-K%, Min-K%++) AUC, PrivLeak"
    Config = MuseConfig
    reads = ("qa_form", "generate_tokens")
    # 2: open-unlearning's Min-K rounding and Min-K%++ clamp; people recorded for the intervals
    # 3: holdout people as the non-members; the distractor variant as a separate knowledge test
    version = 3

    def measure(self, ctx: Context, model, tok) -> dict:
        k = self.config.mink_k
        form = ctx.text_form
        fits = lambda f: f.relation in ctx.task.forms[form].templates  # noqa: E731
        members = [ctx.task.render(f, form) for f in ctx.task.facts("forget") if fits(f)]
        nonmembers = [ctx.task.render(f, form) for f in ctx.nonmembers if fits(f)]
        texts_m, texts_n = [e.text for e in members], [e.text for e in nonmembers]
        sm = _attack_scores(token_stats(model, tok, texts_m), texts_m, k)
        sn = _attack_scores(token_stats(model, tok, texts_n), texts_n, k)
        holdout = bool(ctx.task.facts("holdout"))
        out = {"auc": {a: auc(sm[a], sn[a]) for a in ATTACKS}, "members": sm, "nonmembers": sn,
               "nonmember_kind": "holdout" if holdout else "distractor",
               "people": [[e.fact.subject for e in members], [e.fact.subject for e in nonmembers]]}
        if holdout:  # the knowledge test: the same forget facts with a wrong answer
            wrong = [ctx.task.render(f, form) for f in distractor_facts(ctx.task) if fits(f)]
            texts_w = [e.text for e in wrong]
            out["distractor"] = {"scores": _attack_scores(token_stats(model, tok, texts_w), texts_w, k)["mink"],
                                 "people": [e.fact.subject for e in wrong]}
        verb = greedy(model, tok, [e.prompt for e in members], ctx.config.generate_tokens)
        qa = [ctx.task.render(f, ctx.qa_form) for f in ctx.task.facts("forget")
              if f.relation in ctx.task.forms[ctx.qa_form].templates]
        know = greedy(model, tok, [e.prompt for e in qa], ctx.config.generate_tokens)
        return {
            **out,
            "verbmem": mean([rouge_l(g, e.answer)[1] for g, e in zip(verb, members)]),
            "knowmem": mean([rouge_l(g, e.answer)[1] for g, e in zip(know, qa)]),
            "n": [len(texts_m), len(texts_n)],
        }

    def compare(self, ctx: Context, raws: dict, missing: dict):
        metrics = []
        first = next(iter(raws.values()))
        people = first["people"]
        clusters, is_member = paired_items(*people)
        holdout = first.get("nonmember_kind") == "holdout"
        # holdout people are other people: forget and holdout people are resampled each in their set
        strata = is_member if holdout else None
        against = ("facts of holdout people no model saw" if holdout else
                   "the same facts with a wrong answer (this task has no holdout people)")

        def scores(raw, attack):
            return raw["members"][attack] + raw["nonmembers"][attack]

        def bootstrap(statistic):
            return list(cluster_bootstrap(clusters, statistic, strata=strata))

        for a in ATTACKS:
            intervals = {r: bootstrap(auc_statistic(scores(x, a), is_member)) for r, x in raws.items()}
            metrics.append(Metric(f"muse.auc.{a}", "muse", "reference", {r: x["auc"][a] for r, x in raws.items()},
                                  intervals=intervals,
                                  description=f"membership AUC of the {a} attack, forget facts vs {against} "
                                              f"(1: members separated; 0.5: as the oracle)"))
        leak = Metric("muse.privleak", "muse", "reference",
                      description="MUSE PrivLeak: ((1-AUC) - (1-AUC_oracle)) / (1-AUC_oracle) x 100, Min-K% "
                                  f"attack, forget facts vs {against}; 0 as the oracle, -100 members fully "
                                  "exposed, > 0 over-unlearned")
        if "oracle" in raws:
            ref = raws["oracle"]
            leak.values = {r: privleak(x["auc"]["mink"], ref["auc"]["mink"]) for r, x in raws.items()}
            oracle_auc = auc_statistic(scores(ref, "mink"), is_member)
            for r, x in raws.items():
                model_auc = auc_statistic(scores(x, "mink"), is_member)
                leak.intervals[r] = bootstrap(lambda idx: privleak(model_auc(idx), oracle_auc(idx)))  # noqa: B023
        else:
            leak.notes = {r: missing.get("oracle", NO_ORACLE) for r in raws}
        metrics.append(leak)
        if holdout:
            metrics.append(self._distractor_metric(raws))
        metrics.append(Metric("muse.verbmem.forget", "muse", "reference", {r: x["verbmem"] for r, x in raws.items()},
                              description="ROUGE-L F1 of the greedy continuation of forget texts"))
        metrics.append(Metric("muse.knowmem.forget", "muse", "reference", {r: x["knowmem"] for r, x in raws.items()},
                              description="ROUGE-L F1 of the greedy answers to forget questions"))
        details = {r: {"members": x["members"], "nonmembers": x["nonmembers"], "n": x["n"], "people": x["people"],
                       "nonmember_kind": x.get("nonmember_kind", "distractor")}
                   for r, x in raws.items()}
        return metrics, details

    @staticmethod
    def _distractor_metric(raws: dict) -> Metric:
        """Forget facts against the same facts with a wrong answer, Min-K% scores: whether the
        model still prefers the true answer (a person's two texts resampled together)."""
        first = next(iter(raws.values()))
        clusters, is_member = paired_items(first["people"][0], first["distractor"]["people"])
        values, intervals = {}, {}
        for r, x in raws.items():
            s = x["members"]["mink"] + x["distractor"]["scores"]
            values[r] = auc(x["members"]["mink"], x["distractor"]["scores"])
            intervals[r] = list(cluster_bootstrap(clusters, auc_statistic(s, is_member)))
        return Metric("muse.distractor_auc", "muse", "reference", values, intervals=intervals,
                      description="knowledge test, not membership: Min-K% AUC of forget facts vs the same facts "
                                  "with a wrong answer (0.5: no preference for the true answer)")
