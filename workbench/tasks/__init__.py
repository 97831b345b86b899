"""Forget tasks: facts, surface forms and forget / retain / neighbour splits.

Pure data: nothing here loads or runs a model. A model's own tasks (its testbed world, or the
real facts it knows) come from `LoadedModel.task(name)` in `workbench.models`.
"""
from __future__ import annotations

import dataclasses
from urllib.parse import parse_qsl

from ..errors import WorkbenchInputError
from .task import SPLITS, Example, Fact, ForgetTask, Form, subsample, subsample_facts

TASK_FORMS = ("default (the model's own task), real:TOPIC (a real-knowledge topic, pretrained models only), "
              "either followed by ?relations=a,b&subjects=X,Y (a composed task: only those forget facts)")
COMPOSE_KEYS = ("relations", "subjects")

__all__ = ["SPLITS", "Example", "Fact", "ForgetTask", "Form", "subsample", "subsample_facts", "TASK_FORMS",
           "COMPOSE_KEYS", "split_name", "compose"]


def split_name(name: str) -> tuple[str, str]:
    """(base, query) of a task name, the base checked: `default` or `real:TOPIC`."""
    name = name or "default"
    base, _, query = name.partition("?")
    if base != "default" and not (base.startswith("real:") and len(base) > len("real:")):
        raise WorkbenchInputError(f"task {name!r}: expected one of: {TASK_FORMS}")
    return base, query


def compose(task: ForgetTask, query: str, name: str | None = None) -> ForgetTask:
    """A task whose forget split is filtered by `relations=a,b` and/or `subjects=X,Y` (the
    retain and neighbour splits stay whole)."""
    pairs = parse_qsl(query, keep_blank_values=True)
    wanted: dict[str, set[str]] = {}
    for key, value in pairs:
        if key not in COMPOSE_KEYS:
            raise WorkbenchInputError(f"task {name or task.name!r}: unknown key {key!r}; "
                                      f"accepted: {', '.join(COMPOSE_KEYS)}")
        wanted[key] = {v.strip() for v in value.split(",") if v.strip()}
    forget = task.facts("forget")
    have = {"relations": sorted({f.relation for f in forget}), "subjects": sorted({f.subject for f in forget})}
    for key, values in wanted.items():
        bad = sorted(values - set(have[key]))
        if bad:
            shown = ", ".join(have[key][:12]) + (", ..." if len(have[key]) > 12 else "")
            raise WorkbenchInputError(f"task {name or task.name!r}: {key[:-1]} {bad[0]!r} is not in the forget "
                                      f"split; accepted: {shown}")
    kept = [f for f in forget if ("relations" not in wanted or f.relation in wanted["relations"])
            and ("subjects" not in wanted or f.subject in wanted["subjects"])]
    if not kept:
        raise WorkbenchInputError(f"task {name or task.name!r}: no forget fact has both those relations and subjects")
    return dataclasses.replace(task, name=name or f"{task.name}?{query}", splits={**task.splits, "forget": kept})
