"""A model's own forget tasks: its testbed world, or the real facts it answers correctly.

`forget_task(loaded, name)` resolves a task name (`default`, `real:TOPIC`, optionally
`?relations=..&subjects=..`, see `workbench.tasks.TASK_FORMS`) for one loaded model.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

from .. import cache
from ..errors import WorkbenchInputError
from ..tasks import compose, split_name
from ..tasks.realworld import DEFAULT_TOPIC, _data, all_facts, real_task
from ..tasks.task import ForgetTask
from ..tasks.world import World
from .scoring import score_examples

if TYPE_CHECKING:
    from . import LoadedModel


def usable_task(loaded: "LoadedModel", topic: str = DEFAULT_TOPIC, batch_size: int = 32) -> ForgetTask:
    """The real-knowledge task restricted to facts the model answers exactly in the main
    prompt form. The usable subset is cached per model directory."""
    key = cache.content_hash({"model": str(loaded.path), "facts": _data(), "v": 1})
    path = cache.cache_root() / "usable" / f"{key}.json"
    if path.is_file():
        keys = set(json.loads(path.read_text()))
    else:
        full = real_task(DEFAULT_TOPIC)
        examples = [full.render(f, "prompt") for f in all_facts()]
        scores = score_examples(loaded.model, loaded.tokenizer, examples, batch_size)
        keys = {ex.fact.key for ex, s in zip(examples, scores) if s.correct}
        path.parent.mkdir(parents=True, exist_ok=True)
        cache.write_json(path, sorted(keys))
    return real_task(topic, [f for f in all_facts() if f.key in keys])


def forget_task(loaded: "LoadedModel", name: str = "default") -> ForgetTask:
    """The forget task called `name` for a loaded model. `NAME?relations=a,b&subjects=X,Y`
    composes a task from it: the forget split keeps only the facts of those relations and/or
    subjects (the retain and neighbour splits stay whole)."""
    name = name or "default"
    base, query = split_name(name)
    if base == "default":
        task = World(loaded.testbed.world).task() if loaded.testbed is not None else usable_task(loaded)
    elif loaded.testbed is not None:
        raise WorkbenchInputError(f"task {name!r}: the testbed models know only their fictitious world; "
                                  f"use task 'default'")
    else:
        task = usable_task(loaded, base.removeprefix("real:"))
    return compose(task, query, name) if query else task
