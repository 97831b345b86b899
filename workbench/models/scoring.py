"""Teacher-forced answer scoring: the one primitive behind every accuracy in the workbench.

For each `Example` the model reads `prompt + " " + answer`; the answer is *exactly right*
when every answer token is the argmax of the model's next-token distribution (the same as
greedy decoding producing the answer). Multiple-choice examples are also scored by which
option continuation gets the highest log-probability (the lm-eval convention).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Sequence

import torch

from ..tasks.prompts import encode_pairs
from ..tasks.task import Example


@dataclass(frozen=True)
class Score:
    correct: bool  # greedy answer == answer
    logprob: float  # sum of answer-token log-probs
    n_tokens: int
    choice_correct: bool | None  # multiple choice: best option == answer


@torch.no_grad()
def _run(model, tokenizer, seqs: list[tuple[list[int], int]], batch_size: int):
    """Per sequence (all answer tokens argmax-correct, sum logprob, n answer tokens), each
    sequence read whole (right-padded batches sorted by length). The reference for `_shared`."""
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i][0]))
    out: list = [None] * len(seqs)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        width = max(len(seqs[i][0]) for i in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for r, i in enumerate(idx):
            s = seqs[i][0]
            ids[r, : len(s)] = torch.tensor(s)
            mask[r, : len(s)] = 1
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
        logp = torch.log_softmax(logits, dim=-1)
        for r, i in enumerate(idx):
            s, n_prompt = seqs[i]
            pos = torch.arange(n_prompt - 1, len(s) - 1, device=device)
            target = torch.tensor(s[n_prompt:], device=device)
            lp = logp[r, pos, target]
            ok = bool((logits[r, pos].argmax(-1) == target).all())
            out[i] = (ok, float(lp.sum()), len(target))
    return out


def keep_last(model) -> dict:
    """Forward keyword arguments that make the model compute logits at the last position only
    (`logits_to_keep=1`) where it accepts that: everything else skips the LM head, which for a
    large vocabulary costs as much as several layers."""
    return {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}


def _rows(cache, index: torch.Tensor):
    """A new KV cache holding the rows `index` (repeats allowed) of `cache`; None when the
    cache is not the plain per-layer kind this knows how to index."""
    from transformers import DynamicCache

    layers = getattr(cache, "layers", None)
    if not isinstance(cache, DynamicCache) or not layers or any(
            type(layer).__name__ != "DynamicLayer" for layer in layers):
        return None
    return DynamicCache([(layer.keys[index], layer.values[index]) for layer in layers])


@torch.no_grad()
def _shared(model, seqs: list[tuple[list[int], int]], batch_size: int):
    """What `_run` computes, each distinct prompt read once: prompts of one length are batched
    without padding (their last logits score every continuation's first token), and the rest
    of the continuations are read after the prompt's KV cache (`hooks.continuing`, so hooks
    that spare position 0 know these positions are later ones). None when the model's cache
    cannot be indexed by row (the caller falls back to `_run`)."""
    from ..hooks import continuing
    from ..tasks.prompts import same_length_batches

    device = next(model.parameters()).device
    accepts = inspect.signature(model.forward).parameters
    cache_arg = "cache" if "cache" in accepts else "past_key_values"  # transformers renamed it
    last_only = keep_last(model)
    by_prompt: dict[tuple, list[int]] = {}
    for i, (s, n) in enumerate(seqs):
        by_prompt.setdefault(tuple(s[:n]), []).append(i)
    prompts = list(by_prompt)
    out: list = [None] * len(seqs)
    for idx in same_length_batches([len(p) for p in prompts], batch_size):
        n_prompt = len(prompts[idx[0]])
        longer = [(r, i) for r, j in enumerate(idx) for i in by_prompt[prompts[j]] if len(seqs[i][0]) - n_prompt > 1]
        res = model(input_ids=torch.tensor([prompts[j] for j in idx], device=device), use_cache=bool(longer),
                    **last_only)
        last = res.logits[:, -1].float()
        first_lp, first_best = torch.log_softmax(last, -1), last.argmax(-1)
        members = [(r, i) for r, j in enumerate(idx) for i in by_prompt[prompts[j]]]
        rows = torch.tensor([r for r, _ in members], device=device)
        toks = torch.tensor([seqs[i][0][n_prompt] for _, i in members], device=device)
        for (_, i), ok, lp in zip(members, (first_best[rows] == toks).tolist(), first_lp[rows, toks].tolist()):
            out[i] = [ok, lp, 1]
        for start in range(0, len(longer), batch_size):
            chunk = longer[start : start + batch_size]
            cache = _rows(getattr(res, cache_arg, None), torch.tensor([r for r, _ in chunk], device=device))
            if cache is None:
                return None
            tails = [seqs[i][0][n_prompt:] for _, i in chunk]
            width = max(len(t) for t in tails) - 1
            ids = torch.zeros((len(chunk), width), dtype=torch.long)  # input: every tail token but the last
            target = torch.zeros((len(chunk), width), dtype=torch.long)  # what each position must predict
            valid = torch.zeros((len(chunk), width), dtype=torch.bool)
            for k, t in enumerate(tails):  # right padding: it only follows the tokens read
                ids[k, : len(t) - 1] = torch.tensor(t[:-1])
                target[k, : len(t) - 1] = torch.tensor(t[1:])
                valid[k, : len(t) - 1] = True
            target, valid = target.to(device), valid.to(device)
            with continuing(n_prompt):
                logits = model(input_ids=ids.to(device), use_cache=True, **{cache_arg: cache}).logits.float()
            lp = torch.log_softmax(logits, -1).gather(-1, target[..., None]).squeeze(-1)
            lp = (lp * valid).sum(-1).tolist()
            ok = ((logits.argmax(-1) == target) | ~valid).all(-1).tolist()
            for k, (_, i) in enumerate(chunk):
                out[i][0] = out[i][0] and ok[k]
                out[i][1] += lp[k]
                out[i][2] = len(tails[k])
    return [tuple(o) for o in out]


def score_examples(model, tokenizer, examples: Sequence[Example], batch_size: int = 64) -> list[Score]:
    pairs, owners = [], []  # owner: (example index, option index or -1 for the answer)
    for k, ex in enumerate(examples):
        pairs.append((ex.prompt, ex.answer))
        owners.append((k, -1))
        for j, opt in enumerate(ex.options):
            pairs.append((ex.prompt, opt))
            owners.append((k, j))
    seqs = encode_pairs(tokenizer, pairs)
    was_training = model.training
    model.eval()
    where: dict[tuple, int] = {}  # each distinct sequence once (an MC answer is also an option)
    unique = []
    for s, n in seqs:
        if where.setdefault((tuple(s), n), len(unique)) == len(unique):
            unique.append((s, n))
    try:
        got = _shared(model, unique, batch_size)
        if got is None:
            got = _run(model, tokenizer, unique, batch_size)
        results = [got[where[(tuple(s), n)]] for s, n in seqs]
    finally:
        model.train(was_training)
    main: dict[int, tuple] = {}
    option_lp: dict[int, list[float]] = {}
    for (k, j), res in zip(owners, results):
        if j < 0:
            main[k] = res
        else:
            option_lp.setdefault(k, []).append(res[1])
    scores = []
    for k, ex in enumerate(examples):
        ok, lp, n = main[k]
        choice = None
        if ex.options:
            lps = option_lp[k]
            choice = ex.options[max(range(len(lps)), key=lps.__getitem__)] == ex.answer
        scores.append(Score(ok, lp, n, choice))
    return scores


def accuracy(scores: Sequence[Score], multiple_choice: bool = False) -> float:
    if not scores:
        return float("nan")
    if multiple_choice:
        return sum(bool(s.choice_correct) for s in scores) / len(scores)
    return sum(s.correct for s in scores) / len(scores)


def answer_ce(model, ids, mask, labels) -> torch.Tensor:
    """Mean cross-entropy over answer tokens of a `tasks.prompts.answer_batches` batch."""
    logits = model(input_ids=ids, attention_mask=mask).logits.float()
    return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                             labels[:, 1:].reshape(-1), ignore_index=-100)
