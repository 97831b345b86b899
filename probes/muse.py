"""The MUSE family (Shi et al. 2024): VerbMem and KnowMem (ROUGE-L of greedy continuations and
answers), and membership inference (LOSS, zlib, Min-K%, Min-K%++) with its AUC and PrivLeak
against the oracle."""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

from workbench.errors import WorkbenchInputError

from .base import NO_ORACLE, Context, ProbeFamily, mean, register
from .result import Metric
from .text import auc, greedy, rouge_l, token_stats


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

    def measure(self, ctx: Context, model, tok) -> dict:
        k = self.config.mink_k
        form = ctx.text_form
        fits = lambda f: f.relation in ctx.task.forms[form].templates  # noqa: E731
        members = [ctx.task.render(f, form) for f in ctx.task.facts("forget") if fits(f)]
        nonmembers = [ctx.task.render(f, form) for f in ctx.nonmembers if fits(f)]
        texts_m, texts_n = [e.text for e in members], [e.text for e in nonmembers]
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

    def compare(self, ctx: Context, raws: dict, missing: dict):
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


