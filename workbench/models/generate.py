"""Greedy generation without padding: prompts are grouped by token length."""
from __future__ import annotations

import torch


@torch.no_grad()
def greedy(model, tokenizer, prompts: list[str], max_new_tokens: int = 8, batch_size: int = 32) -> list[str]:
    """Greedy continuations, cut at the end-of-sequence token or the first newline after
    the first words."""
    seqs = [tokenizer(p)["input_ids"] for p in prompts]
    by_len: dict[int, list[int]] = {}
    for i, s in enumerate(seqs):
        by_len.setdefault(len(s), []).append(i)
    out = [""] * len(seqs)
    dev = next(model.parameters()).device
    eos = tokenizer.eos_token_id
    was = model.training
    model.eval()
    try:
        for _, group in sorted(by_len.items()):  # equal lengths: no padding at all
            for s in range(0, len(group), batch_size):
                idx = group[s:s + batch_size]
                ids = torch.tensor([seqs[i] for i in idx], device=dev)
                new, cache, step = [], None, ids
                for _ in range(max_new_tokens):
                    res = model(input_ids=step, cache=cache, use_cache=True)
                    cache = getattr(res, "cache", None) or res.past_key_values
                    step = res.logits[:, -1].argmax(-1, keepdim=True)
                    new.append(step)
                gen = torch.cat(new, 1).tolist()
                for r, i in enumerate(idx):
                    toks = gen[r]
                    if eos is not None and eos in toks:
                        toks = toks[:toks.index(eos)]
                    text = tokenizer.decode(toks, skip_special_tokens=True)
                    out[i] = text.strip().split("\n")[0].strip()
    finally:
        model.train(was)
    return out


def greedy_texts(model, tokenizer, prompts: list[str], max_new_tokens: int) -> list[str]:
    """Each prompt followed by the model's own greedy continuation."""
    outs = greedy(model, tokenizer, prompts, max_new_tokens)
    return [f"{p} {o}".strip() for p, o in zip(prompts, outs)]
