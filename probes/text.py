"""Text-level primitives the probes share: per-token log-probabilities (with the statistics
Min-K%++ needs), greedy generation and ROUGE-L. Batches are right-padded by hand, so any
tokenizer padding side works."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from workbench.models.generate import greedy  # noqa: F401  (re-exported for the probes)


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


@dataclass(frozen=True)
class TokenStats:
    logp: list[float]  # log p(x_t | x_<t) for every token after the first
    mu: list[float]  # E_{z~p(.|x_<t)} log p(z)
    sigma: list[float]  # its standard deviation


@torch.no_grad()
def token_stats(model, tokenizer, texts: list[str], batch_size: int = 32) -> list[TokenStats]:
    seqs = [tokenizer(t)["input_ids"] for t in texts]
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    out: list = [None] * len(seqs)
    dev, pad = _device(model), _pad_id(tokenizer)
    was = model.training
    model.eval()
    try:
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            width = max(len(seqs[i]) for i in idx)
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, i in enumerate(idx):
                ids[r, :len(seqs[i])] = torch.tensor(seqs[i])
                mask[r, :len(seqs[i])] = 1
            logp = torch.log_softmax(model(input_ids=ids.to(dev), attention_mask=mask.to(dev)).logits.float(), -1)
            p = logp.exp()
            finite = logp.clamp_min(-1e4)  # p = 0 where logp = -inf: keep 0 * logp at 0
            mu = (p * finite).sum(-1)
            sigma = ((p * finite ** 2).sum(-1) - mu ** 2).clamp_min(0).sqrt()
            for r, i in enumerate(idx):
                n = len(seqs[i])
                tgt = ids[r, 1:n].to(dev)
                lp = logp[r, :n - 1].gather(-1, tgt[:, None])[:, 0]
                out[i] = TokenStats(lp.tolist(), mu[r, :n - 1].tolist(), sigma[r, :n - 1].tolist())
    finally:
        model.train(was)
    return out


def _lcs(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def _words(text: str) -> list[str]:
    return [w.strip(".,;:!?\"'()").lower() for w in text.split() if w.strip(".,;:!?\"'()")]


def rouge_l(prediction: str, reference: str) -> tuple[float, float]:
    """(recall, F1) of the longest common word subsequence."""
    p, r = _words(prediction), _words(reference)
    if not p or not r:
        return 0.0, 0.0
    lcs = _lcs(p, r)
    if lcs == 0:
        return 0.0, 0.0
    rec, prec = lcs / len(r), lcs / len(p)
    return rec, 2 * rec * prec / (rec + prec)
