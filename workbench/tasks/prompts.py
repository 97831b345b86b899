"""Prompts built from a task's facts: the examples of a split in its default forms, tokenised
prompts with the answer's first token, wrong options, the subject's positions and a corrupted
twin (subject replaced by another subject of the same token length), and batches of them.

Localisers, operators and probes all read facts through these builders, so a given
`max_facts` and seed select the same facts everywhere (`task.subsample_facts`).
"""
from __future__ import annotations

import random
import weakref
from dataclasses import dataclass
from typing import Iterator

import torch

from .task import Example, ForgetTask, subsample_facts


def default_forms(task: ForgetTask) -> list[str]:
    """Declarative and question forms the model was trained on; for real tasks (no training
    record) the declarative forms (usable facts are those the model completes in them)."""
    names = [n for n, f in task.forms.items() if f.kind in ("declarative", "qa")]
    if task.trained is None:
        return [n for n in names if task.forms[n].kind == "declarative"]
    trained = [n for n in names if any(task.trained(f, task.forms[n]) for f in task.all_facts[:50])]
    return trained or names


def split_examples(task: ForgetTask, split: str, max_facts: int | None = None, seed: int = 0,
                   forms: list[str] | None = None) -> list[Example]:
    """The facts of one split (`subsample_facts`) rendered in `forms` (default: `default_forms`)."""
    facts = subsample_facts(task.facts(split), max_facts, seed, split)
    forms = forms or default_forms(task)
    return [task.render(f, n) for f in facts for n in forms if f.relation in task.forms[n].templates]


def eval_examples(task: ForgetTask, max_facts: int | None = 200, forms=None, seed: int = 0) -> dict[str, list[Example]]:
    """Forget and retain examples in the default forms: what accuracy checks read."""
    return {split: split_examples(task, split, max_facts, seed, forms) for split in ("forget", "retain")}


@dataclass(frozen=True)
class Prompt:
    example: Example
    ids: tuple[int, ...]
    answer: int  # first answer token
    wrong: tuple[int, ...]  # first tokens of the wrong options (distinct from answer)
    subject: tuple[int, ...]  # token positions of the subject
    corrupt: tuple[int, ...] | None  # same length, subject replaced


def _subject_positions(tokenizer, prompt: str, subject: str) -> tuple[int, ...]:
    start = prompt.find(subject)
    if start < 0:
        return ()
    end = start + len(subject)
    enc = tokenizer(prompt, return_offsets_mapping=True)
    return tuple(i for i, (a, b) in enumerate(enc["offset_mapping"]) if b > a and a < end and b > start)


def first_token(tokenizer, text: str) -> int:
    """The first token of `text` as it follows a prompt (after a space)."""
    return tokenizer(" " + text, add_special_tokens=False)["input_ids"][0]


def build_prompts(tokenizer, task: ForgetTask, split: str, forms: list[str] | None = None,
                  max_facts: int | None = None, seed: int = 0) -> list[Prompt]:
    """Tokenised prompts of a split's facts (`subsample_facts`) with corrupted twins; the
    corrupting subject is drawn by a generator seeded with `seed`."""
    rng = random.Random(seed)
    facts = subsample_facts(task.facts(split), max_facts, seed, split)
    subjects = sorted({f.subject for f in task.all_facts})
    forms = forms or default_forms(task)
    out = []
    for fact in facts:
        for name in forms:
            if fact.relation not in task.forms[name].templates:
                continue
            ex = task.render(fact, name)
            ids = tuple(tokenizer(ex.prompt)["input_ids"])
            answer = first_token(tokenizer, ex.answer)
            wrong = tuple(dict.fromkeys(t for t in (first_token(tokenizer, d) for d in fact.distractors) if t != answer))
            subj = _subject_positions(tokenizer, ex.prompt, fact.subject)
            corrupt = None
            same = sorted({f.subject for f in task.all_facts if f.relation == fact.relation})
            others = [s for s in same if s != fact.subject]
            rng.shuffle(others)
            others += [s for s in subjects if s != fact.subject and s not in same]
            for other in others:
                alt = tuple(tokenizer(ex.prompt.replace(fact.subject, other))["input_ids"])
                if len(alt) == len(ids):
                    corrupt = alt
                    break
            if wrong and subj:
                out.append(Prompt(ex, ids, answer, wrong, subj, corrupt))
    return out


@dataclass
class Batch:
    prompts: list[Prompt]
    ids: torch.Tensor  # [b, n]
    corrupt: torch.Tensor | None  # [b, n]
    answer: torch.Tensor  # [b]
    wrong: torch.Tensor  # [b, w] padded with -1
    subject_mask: torch.Tensor  # [b, n] bool


def same_length_batches(lengths: list[int], batch_size: int) -> Iterator[list[int]]:
    """Indices of items of one length, at most `batch_size` at a time, shorter lengths first and
    the items of a length in their order: batches that need no padding."""
    by_len: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        by_len.setdefault(n, []).append(i)
    for _, group in sorted(by_len.items()):
        for start in range(0, len(group), batch_size):
            yield group[start : start + batch_size]


def batches(prompts: list[Prompt], batch_size: int = 64, need_corrupt: bool = False) -> Iterator[Batch]:
    """Same-length batches (no padding)."""
    usable = [p for p in prompts if p.corrupt is not None or not need_corrupt]
    for idx in same_length_batches([len(p.ids) for p in usable], batch_size):
        chunk = [usable[i] for i in idx]
        n = len(chunk[0].ids)
        w = max(len(p.wrong) for p in chunk)
        wrong = torch.full((len(chunk), w), -1, dtype=torch.long)
        subject = torch.zeros((len(chunk), n), dtype=torch.bool)
        for r, p in enumerate(chunk):
            wrong[r, : len(p.wrong)] = torch.tensor(p.wrong)
            subject[r, list(p.subject)] = True
        corrupt = (torch.tensor([p.corrupt for p in chunk]) if all(p.corrupt for p in chunk) else None)
        yield Batch(chunk, torch.tensor([p.ids for p in chunk]), corrupt,
                    torch.tensor([p.answer for p in chunk]), wrong, subject)


_ENCODED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # tokenizer -> {(prompt, answer, vocab size): ...}
_ENCODED_MAX = 200_000  # pairs kept per tokenizer


def encode_pairs(tokenizer, pairs: list[tuple[str, str]]) -> list[tuple[list[int], int]]:
    """Token ids of each prompt + " " + answer and the prompt's length in tokens. The pairs not
    seen before are tokenised in two batched calls (each distinct prompt once). Remembered per tokenizer: every accuracy re-reads the same
    pairs (a faithfulness check scores them ~20 times)."""
    try:
        memo = _ENCODED.setdefault(tokenizer, {})
    except TypeError:  # a tokenizer that cannot be weakly referenced: nothing remembered
        memo = {}
    vocab = len(tokenizer)
    todo = [pa for pa in dict.fromkeys(pairs) if (*pa, vocab) not in memo]
    if todo:
        if len(memo) + len(todo) > _ENCODED_MAX:
            memo.clear()
        prompts = list(dict.fromkeys(p for p, _ in todo))
        prompt_ids = dict(zip(prompts, tokenizer(prompts)["input_ids"]))
        fulls = tokenizer([f"{p} {a}" for p, a in todo])["input_ids"]
        for (p, a), full in zip(todo, fulls):
            ids = prompt_ids[p]
            if full[: len(ids)] != ids:  # BPE merged across the boundary: fall back to concatenation
                full = ids + tokenizer(" " + a, add_special_tokens=False)["input_ids"]
            memo[(p, a, vocab)] = (tuple(full), len(ids))
    out = []
    for p, a in pairs:
        full, n = memo[(p, a, vocab)]
        out.append((list(full), n))
    return out


def answer_batches(tokenizer, examples: list[Example], batch_size: int = 64):
    """Teacher-forcing batches of prompt + answer (right-padded): (ids, mask, labels) with
    labels -100 everywhere except on answer tokens. For losses and gradients."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    seqs = encode_pairs(tokenizer, [(ex.prompt, ex.answer) for ex in examples])
    for start in range(0, len(seqs), batch_size):
        chunk = seqs[start : start + batch_size]
        width = max(len(s) for s, _ in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        labels = torch.full((len(chunk), width), -100, dtype=torch.long)
        for r, (s, n_prompt) in enumerate(chunk):
            ids[r, : len(s)] = torch.tensor(s)
            mask[r, : len(s)] = 1
            labels[r, n_prompt : len(s)] = torch.tensor(s[n_prompt:])
        yield ids, mask, labels
