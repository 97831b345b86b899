"""Output-level probes: behaviour per surface form, TOFU metrics, MUSE metrics and
membership inference (LOSS, zlib, Min-K%, Min-K%++)."""
from __future__ import annotations

import math
import zlib
from dataclasses import replace
from statistics import harmonic_mean

from workbench.models.scoring import score_examples
from workbench.tasks.task import SPLITS

from .base import Context, family, mean
from .result import Metric
from .text import auc, greedy, rouge_l, token_stats

NO_ORACLE = "no oracle to compare with"


def _split_direction(split: str) -> str:
    return "reference" if split == "forget" else "higher"


# -- behaviour ---------------------------------------------------------------------------
def _group(task, ex) -> str:
    if ex.kind == "mcq":
        return "mcq"
    if task.trained is None:
        return ex.form
    if ex.trained:
        return "trained"
    return "heldout_qa" if ex.kind in ("qa", "cloze") else "unseen_para"


def behaviour_measure(ctx: Context, model, tok) -> dict:
    task = ctx.task
    out = {"groups": {}, "forms": {}, "samples": {}}
    for split in SPLITS:
        exs = list(task.examples(split))
        scores = score_examples(model, tok, exs)
        groups: dict[str, list[bool]] = {}
        forms: dict[str, list[bool]] = {}
        for ex, sc in zip(exs, scores):
            ok = bool(sc.choice_correct) if ex.kind == "mcq" else sc.correct
            groups.setdefault(_group(task, ex), []).append(ok)
            if ex.kind != "mcq":
                groups.setdefault("all", []).append(ok)
            forms.setdefault(ex.form, []).append(ok)
        out["groups"][split] = {g: mean(v) for g, v in groups.items()}
        out["forms"][split] = {f: mean(v) for f, v in forms.items()}
        facts = [f for f in task.facts(split) if f.relation in task.forms[ctx.qa_form].templates]
        prompts = [task.render(f, ctx.qa_form) for f in facts[: ctx.config.samples]]
        gens = greedy(model, tok, [p.prompt for p in prompts], ctx.config.generate_tokens) if prompts else []
        out["samples"][split] = [{"prompt": p.prompt, "answer": p.answer, "generated": g}
                                 for p, g in zip(prompts, gens)]
    return out


def behaviour_compare(ctx: Context, raws: dict, missing: dict):
    metrics = []
    first = next(iter(raws.values()))
    for split in SPLITS:
        for group in first["groups"].get(split, {}):
            metrics.append(Metric(f"behaviour.{split}.{group}", "behaviour", _split_direction(split),
                                  {r: raw["groups"][split].get(group) for r, raw in raws.items()},
                                  description=f"exact-answer accuracy, {split} facts, {group} forms"))
    for form in first["forms"].get("forget", {}):
        metrics.append(Metric(f"behaviour.forget.form.{form}", "behaviour", "reference",
                              {r: raw["forms"]["forget"].get(form) for r, raw in raws.items()},
                              description=f"accuracy on forget facts in the form {form!r}"))
    details = {r: {"forms": raw["forms"], "samples": raw["samples"]} for r, raw in raws.items()}
    return metrics, details


family("behaviour", "accuracy per surface form and split; generation samples")((behaviour_measure, behaviour_compare))


# -- TOFU ------------------------------------------------------------------------------
def tofu_measure(ctx: Context, model, tok) -> dict:
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


def tofu_compare(ctx: Context, raws: dict, missing: dict):
    metrics = []
    for split in SPLITS:
        d = _split_direction(split)
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


family("tofu", "TOFU: probability, truth ratio, ROUGE-L, forget quality (KS vs oracle), model utility")(
    (tofu_measure, tofu_compare))


# -- MUSE and membership inference -----------------------------------------------------------
ATTACKS = ("loss", "zlib", "mink", "minkpp")


def _attack_scores(stats, texts: list[str], k: float) -> dict[str, list[float]]:
    """Membership scores, higher = more likely a member."""
    out = {a: [] for a in ATTACKS}
    for st, text in zip(stats, texts):
        nll = [-x for x in st.logp]
        n = max(1, math.ceil(k * len(st.logp)))
        out["loss"].append(-mean(nll))
        out["zlib"].append(-mean(nll) / len(zlib.compress(text.encode())))
        out["mink"].append(mean(sorted(st.logp)[:n]))
        z = [(lp - m) / s if s > 0 else 0.0 for lp, m, s in zip(st.logp, st.mu, st.sigma)]
        out["minkpp"].append(mean(sorted(z)[:n]))
    return out


def muse_measure(ctx: Context, model, tok) -> dict:
    form = ctx.text_form
    members = [ctx.task.render(f, form) for f in ctx.task.facts("forget") if f.relation in ctx.task.forms[form].templates]
    nonmembers = [ctx.task.render(f, form) for f in ctx.nonmembers if f.relation in ctx.task.forms[form].templates]
    texts_m, texts_n = [e.text for e in members], [e.text for e in nonmembers]
    k = ctx.config.mink_k
    sm = _attack_scores(token_stats(model, tok, texts_m), texts_m, k)
    sn = _attack_scores(token_stats(model, tok, texts_n), texts_n, k)
    verb = greedy(model, tok, [e.prompt for e in members], ctx.config.generate_tokens)
    qa = [ctx.task.render(f, ctx.qa_form) for f in ctx.task.facts("forget")
          if f.relation in ctx.task.forms[ctx.qa_form].templates]
    know = greedy(model, tok, [e.prompt for e in qa], ctx.config.generate_tokens)
    return {
        "auc": {a: auc(sm[a], sn[a]) for a in ATTACKS},
        "members": sm, "nonmembers": sn,
        "verbmem": mean([rouge_l(g, e.answer)[1] for g, e in zip(verb, members)]),
        "knowmem": mean([rouge_l(g, e.answer)[1] for g, e in zip(know, qa)]),
        "n": [len(texts_m), len(texts_n)],
    }


def muse_compare(ctx: Context, raws: dict, missing: dict):
    metrics = []
    for a in ATTACKS:
        metrics.append(Metric(f"muse.auc.{a}", "muse", "reference", {r: x["auc"][a] for r, x in raws.items()},
                              description=f"membership AUC of the {a} attack, forget facts vs facts no "
                                          f"model saw"))
    leak = Metric("muse.privleak", "muse", "reference",
                  description="(AUC - AUC_oracle) / AUC_oracle x 100, Min-K% attack; ~0 is ideal")
    if "oracle" in raws:
        ref = raws["oracle"]["auc"]["mink"]
        leak.values = {r: (x["auc"]["mink"] - ref) / ref * 100 if ref > 0 else float("nan")
                       for r, x in raws.items()}
    else:
        leak.notes = {r: missing.get("oracle", NO_ORACLE) for r in raws}
    metrics.append(leak)
    metrics.append(Metric("muse.verbmem.forget", "muse", "reference", {r: x["verbmem"] for r, x in raws.items()},
                          description="ROUGE-L F1 of the greedy continuation of forget texts"))
    metrics.append(Metric("muse.knowmem.forget", "muse", "reference", {r: x["knowmem"] for r, x in raws.items()},
                          description="ROUGE-L F1 of the greedy answers to forget questions"))
    details = {r: {"members": x["members"], "nonmembers": x["nonmembers"], "n": x["n"]} for r, x in raws.items()}
    return metrics, details


family("muse", "MUSE: VerbMem, KnowMem; membership inference (LOSS, zlib, Min-K%, Min-K%++) AUC, PrivLeak")(
    (muse_measure, muse_compare))
