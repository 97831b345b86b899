"""Multiple-choice scoring against lm-eval's HF `loglikelihood` on the same items."""
from __future__ import annotations

import contextlib

from ..errors import WorkbenchInputError
from .context import DEFAULT, REAL, Context, short
from .core import Row, interleaved, ratio_row

# --- scoring ------------------------------------------------------------------------------

def _mc_items(loaded, n_facts: int):
    from ..tasks.prompts import split_examples

    task = loaded.task()
    if "mcq" not in task.forms:
        raise WorkbenchInputError(f"{loaded.spec}: its task has no multiple-choice form")
    items = []
    for split in ("forget", "retain"):
        items += [e for e in split_examples(task, split, n_facts, forms=["mcq"]) if e.options]
    return items


def _lm_eval_choices(lm, items) -> tuple[list[int], list[float]]:
    """lm-eval's loglikelihood of every option: the chosen option per item and the answer's
    log-probability."""
    from lm_eval.api.instance import Instance

    reqs = [Instance(request_type="loglikelihood", doc={}, arguments=(ex.prompt, " " + opt), idx=j)
            for ex in items for j, opt in enumerate(ex.options)]
    out = lm.loglikelihood(reqs, disable_tqdm=True)
    chosen, answer_lp, k = [], [], 0
    for ex in items:
        lps = [lp for lp, _ in out[k : k + len(ex.options)]]
        k += len(ex.options)
        chosen.append(max(range(len(lps)), key=lps.__getitem__))
        answer_lp.append(lps[ex.options.index(ex.answer)])
    return chosen, answer_lp


def scoring(ctx: Context) -> list[Row]:
    try:
        from lm_eval.models.huggingface import HFLM
    except ImportError:
        raise RuntimeError("the scoring benchmark compares with lm-eval, which is not installed: "
                           "pip install 'unlearning-workbench[bench]' (or lm_eval==0.4.13)") from None

    from ..models.scoring import score_examples
    from ..tasks import prompts as prompt_cache

    rows = []
    for spec in ctx.specs([DEFAULT, REAL]):
        m = ctx.model(spec)
        items = _mc_items(m, 10 if ctx.quick else 100)
        with _quiet_logs():
            lm = HFLM(pretrained=m.model, tokenizer=m.tokenizer, batch_size=64, device=ctx.device)

        def ours():
            prompt_cache._ENCODED.pop(m.tokenizer, None)  # tokenising is part of the work, as for lm-eval
            return score_examples(m.model, m.tokenizer, items, 64)
        scores = ours()
        chosen, answer_lp = _lm_eval_choices(lm, items)
        same = sum((ex.options[c] == ex.answer) == s.choice_correct for ex, c, s in zip(items, chosen, scores))
        lp_diff = max(abs(a - s.logprob) for a, s in zip(answer_lp, scores))
        times = interleaved({"ours": ctx.timed(ours), "lm_eval": ctx.timed(lambda: _lm_eval_choices(lm, items))},
                            ctx.repeats)
        rows.append(ratio_row("scoring", f"multiple-choice scoring | {short(spec)}", "lm-eval HFLM.loglikelihood",
                              times["ours"], times["lm_eval"], kind="speedup", target=1.5,
                              extra={"items": len(items), "options": sum(len(e.options) for e in items),
                                     "same verdicts": f"{same}/{len(items)}", "max |answer logprob diff|": lp_diff}))
    return rows


@contextlib.contextmanager
def _quiet_logs():
    import logging
    import warnings

    level = logging.getLogger("lm_eval").level
    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            logging.getLogger("lm_eval").setLevel(level)
