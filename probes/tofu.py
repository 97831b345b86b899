"""The TOFU family (Maini et al. 2024): probability, truth ratio, ROUGE-L of the greedy answer,
forget quality (KS test against the oracle) and model utility.

Conventions as open-unlearning computes them (`evals/metrics/memorization.py::truth_ratio`,
`privacy.py::forget_quality`): a probability is exp(-mean answer-token loss); the truth ratio is
the wrong answers' probability (exp of minus their mean per-token loss, i.e. the geometric mean
over the distractors) over the right answer's; forget facts score mean min(tr, 1/tr), other
splits mean max(0, 1 - tr); forget quality is the KS-test p-value between the forget truth
ratios of the model and of the oracle (here of log tr: KS is invariant to the monotone log).
One difference from TOFU: the testbed's answers are single entities with no paraphrase, so the
right answer itself stands where TOFU uses its paraphrased answer. Model utility is the harmonic
mean of probability, ROUGE-L recall and truth-ratio score on retain and neighbour facts."""
from __future__ import annotations

import math
from dataclasses import replace
from statistics import harmonic_mean

from workbench.models.scoring import score_examples
from workbench.tasks.task import SPLITS

from .base import NO_ORACLE, Context, ProbeFamily, mean, register
from .behaviour import split_direction
from .result import Metric
from .text import greedy, rouge_l


@register
class Tofu(ProbeFamily):
    name = "tofu"
    summary = "TOFU: probability, truth ratio, ROUGE-L, forget quality (KS vs oracle), model utility"
    reads = ("qa_form", "generate_tokens")

    def measure(self, ctx: Context, model, tok) -> dict:
        out = {}
        for split in SPLITS:
            facts = [f for f in ctx.task.facts(split) if f.relation in ctx.task.forms[ctx.qa_form].templates]
            if not facts:
                out[split] = {"prob": [], "log_truth_ratio": [], "rouge_recall": [], "rouge_f1": []}
                continue
            facts = [f for f in facts if f.distractors]  # a truth ratio needs wrong answers
            exs = [ctx.task.render(f, ctx.qa_form) for f in facts]
            wrong = [replace(ex, answer=d, options=()) for ex in exs for d in ex.fact.distractors]
            s_right = score_examples(model, tok, exs)
            s_wrong = score_examples(model, tok, wrong)
            per_token = lambda s: s.logprob / max(1, s.n_tokens)  # noqa: E731
            prob, log_tr, k = [], [], 0
            for ex, s in zip(exs, s_right):
                n = len(ex.fact.distractors)
                lw = [per_token(w) for w in s_wrong[k:k + n]]
                k += n
                prob.append(math.exp(per_token(s)))
                log_tr.append(sum(lw) / n - per_token(s))  # log of the truth ratio: no overflow
            gens = greedy(model, tok, [ex.prompt for ex in exs], ctx.config.generate_tokens)
            rouge = [rouge_l(g, ex.answer) for g, ex in zip(gens, exs)]
            out[split] = {"prob": prob, "log_truth_ratio": log_tr, "rouge_recall": [r for r, _ in rouge],
                          "rouge_f1": [f for _, f in rouge]}
        return out

    def compare(self, ctx: Context, raws: dict, missing: dict):
        metrics = []
        for split in SPLITS:
            d = split_direction(split)
            metrics.append(Metric(f"tofu.prob.{split}", "tofu", d, {r: mean(x[split]["prob"]) for r, x in raws.items()},
                                  description="mean p(answer)^(1/|answer|) in the question form"))
            metrics.append(Metric(f"tofu.truth_ratio.{split}", "tofu", d,
                                  {r: _tr_score(split, x[split]["log_truth_ratio"]) for r, x in raws.items()},
                                  description="forget: mean min(tr, 1/tr); others: mean max(0, 1 - tr); "
                                              "tr = p(wrong answers, geometric mean) / p(answer)"))
            metrics.append(Metric(f"tofu.rouge.{split}", "tofu", d,
                                  {r: mean(x[split]["rouge_recall"]) for r, x in raws.items()},
                                  description="ROUGE-L recall of the greedy answer"))
        utility = {}
        for r, x in raws.items():
            parts = []
            for split in ("retain", "neighbour"):
                if x[split]["prob"]:
                    parts += [mean(x[split]["prob"]), mean(x[split]["rouge_recall"]),
                              _tr_score(split, x[split]["log_truth_ratio"])]
            utility[r] = harmonic_mean(parts) if parts and min(parts) > 0 else (0.0 if parts else float("nan"))
        metrics.append(Metric("tofu.model_utility", "tofu", "higher", utility,
                              description="harmonic mean of probability, ROUGE-L and truth-ratio score "
                                          "on retain and neighbour facts"))
        fq = Metric("tofu.forget_quality", "tofu", "higher",
                    description="KS-test p-value between the forget-set truth ratios of the model and "
                                "of the oracle (the oracle against itself: 1)")
        if "oracle" in raws:
            ref = raws["oracle"]["forget"]["log_truth_ratio"]  # KS is invariant to the monotone log
            fq.values = {r: ks_pvalue(x["forget"]["log_truth_ratio"], ref) for r, x in raws.items()}
        else:
            fq.notes = {r: missing.get("oracle", NO_ORACLE) for r in raws}
        metrics.append(fq)
        details = {r: {"log_truth_ratio_forget": x["forget"]["log_truth_ratio"]} for r, x in raws.items()}
        return metrics, details


def _tr_score(split: str, log_trs: list[float]) -> float:
    """forget: mean min(tr, 1/tr) = exp(-|log tr|); others: mean max(0, 1 - tr)."""
    if split == "forget":
        return mean([math.exp(-abs(t)) for t in log_trs])
    return mean([max(0.0, 1 - math.exp(min(t, 50.0))) for t in log_trs])


def ks_pvalue(a: list[float], b: list[float]) -> float:
    from scipy.stats import ks_2samp

    if not a or not b:
        return float("nan")
    return float(ks_2samp(a, b).pvalue)


