"""ForgetTask: facts split into forget / retain / neighbour, rendered in surface forms.

A `Fact` is (subject, relation, answer, distractors). A `Form` is one way of asking for a
fact (a declarative paraphrase, a question, a cloze, a multiple choice). Rendering a fact
in a form gives an `Example`: the prompt that ends right before the answer, the answer, the
options (for multiple choice) and whether this (fact, form) pair was in the training data.
"""
from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Iterable, Iterator

from ..errors import WorkbenchInputError

SPLITS = ("forget", "retain", "neighbour")
# People no model was trained on, as TOFU's holdout set: the non-members of membership
# inference. Optional (a real task has none); never part of `all_facts` nor of an edit's view.
HOLDOUT = "holdout"
ALL_SPLITS = (*SPLITS, HOLDOUT)
FORM_KINDS = ("declarative", "qa", "cloze", "mcq")


@dataclass(frozen=True)
class Fact:
    subject: str
    relation: str
    answer: str
    distractors: tuple[str, ...]
    topic: str = ""

    @property
    def key(self) -> str:
        return f"{self.subject}|{self.relation}"


@dataclass(frozen=True)
class Form:
    """One surface form. `templates` maps relation -> template with {subject} and, for
    multiple choice, {options}; the answer follows the template after one space."""

    name: str
    kind: str
    templates: dict[str, str] = field(hash=False, compare=True)

    def __post_init__(self):
        if self.kind not in FORM_KINDS:
            raise WorkbenchInputError(f"form kind {self.kind!r}: expected one of {', '.join(FORM_KINDS)}")


@dataclass(frozen=True)
class Example:
    fact: Fact
    form: str
    kind: str
    prompt: str
    answer: str
    options: tuple[str, ...] = ()
    trained: bool = False

    @property
    def text(self) -> str:
        return f"{self.prompt} {self.answer}"


@dataclass
class ForgetTask:
    """Facts in three disjoint splits (plus, optionally, a `holdout` split of people no model
    was trained on) and the forms to render them in.

    `trained(fact, form)` says whether the training data of the (full) model holds that
    pair; it is `None` for real models whose training data is unknown.
    """

    name: str
    splits: dict[str, list[Fact]]
    forms: dict[str, Form]
    trained: Callable[[Fact, Form], bool] | None = None
    lexicon: tuple[str, ...] = ()
    description: str = ""
    option_seed: int = 0
    view: str = ""  # "train": what an edit may read (`workbench.tasks.declared.train_view`)

    def __post_init__(self):
        unknown = set(self.splits) - set(ALL_SPLITS)
        if unknown:
            raise WorkbenchInputError(f"split {sorted(unknown)[0]!r}: expected one of {', '.join(ALL_SPLITS)}")
        for s in SPLITS:
            self.splits.setdefault(s, [])

    # -- access -------------------------------------------------------------------------
    def facts(self, split: str) -> list[Fact]:
        if split not in ALL_SPLITS:
            raise WorkbenchInputError(f"split {split!r}: expected one of {', '.join(ALL_SPLITS)}")
        return self.splits.get(split, [])

    @property
    def all_facts(self) -> list[Fact]:
        return [f for s in SPLITS for f in self.splits[s]]

    def form(self, name: str) -> Form:
        if name not in self.forms:
            raise WorkbenchInputError(f"form {name!r}: expected one of {', '.join(self.forms)}")
        return self.forms[name]

    def render(self, fact: Fact, form: Form | str) -> Example:
        form = self.form(form) if isinstance(form, str) else form
        template = form.templates.get(fact.relation)
        if template is None:
            raise WorkbenchInputError(f"form {form.name!r} has no template for relation {fact.relation!r}")
        options: tuple[str, ...] = ()
        fill = {"subject": fact.subject}
        if form.kind == "mcq":
            options = mcq_options(fact, self.option_seed)
            fill["options"] = " , ".join(options)
        trained = bool(self.trained(fact, form)) if self.trained is not None else False
        return Example(fact, form.name, form.kind, template.format(**fill), fact.answer, options, trained)

    def examples(self, split: str, forms: Iterable[str] | None = None) -> Iterator[Example]:
        yield from self.render_all(self.facts(split), forms)

    def render_all(self, facts: Iterable[Fact], forms: Iterable[str] | None = None,
                   mcq: bool = True) -> list[Example]:
        """Every fact in every form of `forms` (default: all; `mcq=False` leaves out multiple
        choice) that has a template for its relation, fact by fact."""
        chosen = [self.form(n) for n in (forms if forms is not None else self.forms)]
        chosen = [f for f in chosen if mcq or f.kind != "mcq"]
        return [self.render(fact, form) for fact in facts for form in chosen if fact.relation in form.templates]

    def forms_of(self, kind: str) -> list[str]:
        return [n for n, f in self.forms.items() if f.kind == kind]

    # -- identity -------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "name": self.name, **({"view": self.view} if self.view else {}),
            "splits": {s: [asdict(f) for f in fs] for s, fs in self.splits.items()},
            "forms": {n: {"kind": f.kind, "templates": f.templates} for n, f in self.forms.items()},
            "lexicon": list(self.lexicon),
        }

    @property
    def content_hash(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def summary(self) -> str:
        n = {s: len(self.splits[s]) for s in ALL_SPLITS if s in self.splits}
        return f"{self.name}: " + ", ".join(f"{k} {v} facts" for k, v in n.items())


def form_group(task: ForgetTask, ex: Example) -> str:
    """The surface-form group an example is reported in: `mcq`; for tasks with a training
    record `trained` (the training data held this pair), `heldout_qa` (a question or cloze form
    never trained for this person) or `unseen_para` (the paraphrase no one was trained on);
    for tasks without one (real models), the form's own name."""
    if ex.kind == "mcq":
        return "mcq"
    if task.trained is None:
        return ex.form
    if ex.trained:
        return "trained"
    return "heldout_qa" if ex.kind in ("qa", "cloze") else "unseen_para"


def subsample_facts(facts: list[Fact], max_facts: int | None, seed: int, split: str) -> list[Fact]:
    """At most `max_facts` of `facts`, drawn by a generator seeded with (seed, split), kept in
    their task order. The one subsampling rule of the workbench: a localiser, an operator, a
    probe and a table given the same `max_facts` and seed see the same facts."""
    if max_facts is None or len(facts) <= max_facts:
        return list(facts)
    if max_facts < 0:
        raise WorkbenchInputError(f"max_facts={max_facts}: expected a non-negative integer or none")
    keep = sorted(random.Random(f"{seed}|{split}").sample(range(len(facts)), max_facts))
    return [facts[i] for i in keep]


def subsample(task: ForgetTask, max_facts: int | None, seed: int = 0) -> ForgetTask:
    """The task with every split subsampled by `subsample_facts` (the same task if None)."""
    if max_facts is None:
        return task
    return replace(task, splits={s: subsample_facts(task.facts(s), max_facts, seed, s)
                                 for s in ALL_SPLITS if s in task.splits})


def mcq_options(fact: Fact, seed: int = 0) -> tuple[str, ...]:
    """Answer plus three distractors in an order fixed by the fact and the seed."""
    options = [fact.answer, *fact.distractors[:3]]
    digest = hashlib.sha256(f"{seed}|{fact.key}".encode()).digest()
    keyed = sorted(range(len(options)), key=lambda i: digest[i])
    return tuple(options[i] for i in keyed)
