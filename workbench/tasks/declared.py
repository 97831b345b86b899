"""What an edit may read, declared: the train view of a task, and the evaluation data held out
of it (the honest-evaluation contract).

`train_view(task)` is the only task a localiser, an operator or an SAE is given:
- the forget facts, in the **train forms** (`prompts.default_forms`: the declarative and
  question forms the model was trained on; for real tasks, the declarative forms);
- the retain facts of every retain person except the **retain-eval people** (a seeded fifth
  of them, `retain_eval_people`), in the same forms;
- no neighbour facts, no holdout people.

Everything else is evaluation only: the forms outside the train forms (the never-trained
paraphrase, cloze, multiple choice: `eval_forms`), every fact of the retain-eval people, the
neighbour split and the holdout people (the non-members of membership inference). The probes
report the forget split on the evaluation forms and the retain-eval people as the headline,
the in-sample numbers beside them.
"""
from __future__ import annotations

import random
from dataclasses import replace

from .prompts import default_forms
from .task import Fact, ForgetTask

EVAL_SHARE = 0.2  # of the retain people, never shown to an edit or a localiser
# the legend of every table that puts the held-out columns first
LEGEND = ("forget, retain, neighbour: held out of every edit (forget facts in the forms no edit reads; retain people "
          "no edit reads); *_in_sample: every form, including those the edits trained on")
TRAIN_VIEW = "train"


def retain_eval_people(task: ForgetTask) -> frozenset[str]:
    """The retain people held out of every edit: `EVAL_SHARE` of them (at least one where
    there are two or more), drawn by a generator seeded with the task's option seed."""
    people = sorted({f.subject for f in task.facts("retain")})
    k = min(len(people) - 1, max(1, round(EVAL_SHARE * len(people)))) if len(people) > 1 else 0
    return frozenset(random.Random(f"{task.option_seed}|retain_eval").sample(people, k))


def retain_eval_facts(task: ForgetTask) -> list[Fact]:
    held = retain_eval_people(task)
    return [f for f in task.facts("retain") if f.subject in held]


def eval_forms(task: ForgetTask) -> list[str]:
    """The non-multiple-choice forms no edit reads (e.g. the unseen paraphrase and cloze)."""
    train = set(default_forms(task))
    return [n for n, f in task.forms.items() if n not in train and f.kind != "mcq"]


def train_view(task: ForgetTask) -> ForgetTask:
    """The task as an edit or a localiser may read it (module docstring); a view is its own view."""
    if task.view == TRAIN_VIEW:
        return task
    forms = default_forms(task)
    held = retain_eval_people(task)
    return replace(task, name=f"{task.name}[train]", view=TRAIN_VIEW,
                   splits={"forget": list(task.facts("forget")),
                           "retain": [f for f in task.facts("retain") if f.subject not in held],
                           "neighbour": []},
                   forms={n: task.forms[n] for n in forms})
