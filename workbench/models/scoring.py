"""Teacher-forced answer scoring: the one primitive behind every accuracy in the workbench.

For each `Example` the model reads `prompt + " " + answer`; the answer is *exactly right*
when every answer token is the argmax of the model's next-token distribution (the same as
greedy decoding producing the answer). Multiple-choice examples are also scored by which
option continuation gets the highest log-probability (the lm-eval convention).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..tasks.prompts import encode_pair
from ..tasks.task import Example


@dataclass(frozen=True)
class Score:
    correct: bool  # greedy answer == answer
    logprob: float  # sum of answer-token log-probs
    n_tokens: int
    choice_correct: bool | None  # multiple choice: best option == answer


@torch.no_grad()
def _run(model, tokenizer, seqs: list[tuple[list[int], int]], batch_size: int):
    """Returns per sequence (all answer tokens argmax-correct, sum logprob, n answer tokens)."""
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


def score_examples(model, tokenizer, examples: Sequence[Example], batch_size: int = 64) -> list[Score]:
    seqs, owners = [], []  # owner: (example index, option index or -1 for the answer)
    for k, ex in enumerate(examples):
        seqs.append(encode_pair(tokenizer, ex.prompt, ex.answer))
        owners.append((k, -1))
        for j, opt in enumerate(ex.options):
            seqs.append(encode_pair(tokenizer, ex.prompt, opt))
            owners.append((k, j))
    was_training = model.training
    model.eval()
    try:
        results = _run(model, tokenizer, seqs, batch_size)
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
