"""Probe configuration, the shared context, and the family registry.

A probe family measures one model at a time (`measure`, whose JSON output is cached by the
model's content hash) and then compares the roles (`compare`, cheap, never cached), so a
reference-based metric (forget quality, PrivLeak, relearning gap) is always computed from
the same raw measurements that are reported side by side.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Literal

from workbench.registry import Registry
from workbench.tasks.task import SPLITS, Example, Fact, ForgetTask

CODE_VERSION = 3
FAMILY_NAMES = ("behaviour", "tofu", "muse", "traces", "latent", "relearn", "prompts")


@dataclass(frozen=True)
class ProbeConfig:
    families: tuple[str, ...] = FAMILY_NAMES
    max_facts: int | None = None  # facts per split (seeded subsample); None = all
    seed: int = 0
    samples: int = 5  # generation samples per split shown in the app
    tofu_form: str | None = None  # None: testbed, the question form; real tasks, the form facts were selected in
    mink_k: float = 0.4  # Min-K% / Min-K%++ fraction of tokens (MUSE PrivLeak uses 40%)
    trace_vectors: int = 20  # the task's concept vectors followed by the trace probe
    relearn_method: Literal["full", "lora"] = "full"
    relearn_steps: int = 20
    relearn_lr: float | None = None  # None: full 3e-4 / LoRA 1e-3 below 10M parameters, else 2e-5 / 2e-4
    relearn_batch: int = 16
    relearn_lora_r: int = 16
    relearn_lora_alpha: int = 32
    relearn_data: tuple[str, ...] = ("forget", "retain")
    generate_tokens: int = 8

    def check(self):
        bad = [f for f in self.families if f not in FAMILY_NAMES]
        if bad:
            raise ValueError(f"probe {bad[0]!r}: expected one of {', '.join(FAMILY_NAMES)}")
        bad = [d for d in self.relearn_data if d not in ("forget", "retain")]
        if bad:
            raise ValueError(f"option relearn_data={bad[0]!r}: expected forget and/or retain")
        for key in ("relearn_steps", "relearn_batch", "samples", "trace_vectors", "generate_tokens"):
            if getattr(self, key) < (0 if key in ("relearn_steps", "samples") else 1):
                raise ValueError(f"option {key}={getattr(self, key)}: expected a positive integer")
        if self.max_facts is not None and self.max_facts < 2:
            raise ValueError(f"option max_facts={self.max_facts}: expected an integer >= 2 or none")
        if not 0 < self.mink_k <= 1:
            raise ValueError(f"option mink_k={self.mink_k}: expected a fraction in (0, 1]")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Context:
    """What every family may read: the (subsampled) task, the config, the original model."""

    task: ForgetTask  # subsampled to max_facts per split
    full_task: ForgetTask
    config: ProbeConfig
    original: object  # LoadedModel
    nonmembers: list[Fact]
    shared: dict = field(default_factory=dict)  # e.g. the original's value vectors (traces)

    def examples(self, split: str, kinds=("declarative", "qa", "cloze")) -> list[Example]:
        return [ex for ex in self.task.examples(split) if ex.kind in kinds]

    @property
    def qa_form(self) -> str:
        if self.config.tofu_form is not None:
            self.task.form(self.config.tofu_form)  # raises naming the accepted forms
            return self.config.tofu_form
        decl, qa = self.task.forms_of("declarative"), self.task.forms_of("qa")
        if self.task.trained is None and decl:  # a real task: its facts are the ones answered in this form
            return decl[0]
        names = qa or decl or [n for n, f in self.task.forms.items() if f.kind != "mcq"]
        if not names:
            raise ValueError(f"task {self.task.name!r} has no non-multiple-choice form to probe")
        return names[0]

    @property
    def text_form(self) -> str:
        """The declarative form every model was trained on (for membership texts)."""
        decl = self.task.forms_of("declarative") or [self.qa_form]
        if self.task.trained is not None:
            f0 = self.task.facts("forget")[0] if self.task.facts("forget") else None
            trained = [n for n in decl if f0 is None or self.task.trained(f0, self.task.forms[n])]
            decl = trained or decl
        return decl[0]


@dataclass(frozen=True)
class Family:
    name: str
    summary: str
    measure: Callable  # (ctx, model, tokenizer) -> JSON-able dict
    compare: Callable  # (ctx, raws: {role: dict}, missing: {role: reason}) -> (metrics, details)
    needs_original: bool = False  # its measurement depends on the original model too


FAMILIES: Registry = Registry("probe")


def family(name: str, summary: str, needs_original: bool = False):
    def deco(pair):
        measure, compare = pair
        FAMILIES.register(name)(Family(name, summary, measure, compare, needs_original))
        return pair
    return deco


def subsample(task: ForgetTask, max_facts: int | None, seed: int) -> ForgetTask:
    if max_facts is None:
        return task
    splits = {}
    for s in SPLITS:
        facts = task.facts(s)
        splits[s] = (sorted(random.Random(f"{seed}|{s}").sample(range(len(facts)), max_facts))
                     if len(facts) > max_facts else list(range(len(facts))))
        splits[s] = [facts[i] for i in splits[s]]
    return replace(task, splits=splits)


def nonmember_facts(task: ForgetTask) -> list[Fact]:
    """Non-members for membership inference: each forget fact with its first distractor as
    the answer. The text differs from the member only in the answer, so a model that never
    saw the fact (the oracle) cannot tell them apart (AUC ~0.5), whatever it knows about the
    subject from related training data (in the testbed, neighbours share name parts and
    attribute values with the forget people, so unrelated new people would not be a fair
    non-member set)."""
    return [Fact(f.subject, f.relation, f.distractors[0], (f.answer, *f.distractors[1:]), f.topic)
            for f in task.facts("forget") if f.distractors]


def mean(xs) -> float:
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else float("nan")
