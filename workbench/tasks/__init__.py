"""Forget tasks: facts, surface forms and forget / retain / neighbour splits."""


TASK_FORMS = ("default (the model's own task), real:TOPIC (a real-knowledge topic, pretrained models only), "
              "either followed by ?relations=a,b&subjects=X,Y (a composed task: only those forget facts)")
COMPOSE_KEYS = ("relations", "subjects")


def task_for(loaded, name: str = "default"):
    """The forget task called `name` for a loaded model. `NAME?relations=a,b&subjects=X,Y`
    composes a task from it: the forget split keeps only the facts of those relations and/or
    subjects (the retain and neighbour splits stay whole)."""
    name = name or "default"
    base, _, query = name.partition("?")
    task = _base_task(loaded, base)
    return compose(task, query, name) if query else task


def compose(task, query: str, name: str | None = None):
    """A task whose forget split is filtered by `relations=a,b` and/or `subjects=X,Y`."""
    import dataclasses
    from urllib.parse import parse_qsl

    pairs = parse_qsl(query, keep_blank_values=True)
    wanted: dict[str, set[str]] = {}
    for key, value in pairs:
        if key not in COMPOSE_KEYS:
            raise ValueError(f"task {name or task.name!r}: unknown key {key!r}; accepted: {', '.join(COMPOSE_KEYS)}")
        wanted[key] = {v.strip() for v in value.split(",") if v.strip()}
    forget = task.facts("forget")
    have = {"relations": sorted({f.relation for f in forget}), "subjects": sorted({f.subject for f in forget})}
    for key, values in wanted.items():
        bad = sorted(values - set(have[key]))
        if bad:
            shown = ", ".join(have[key][:12]) + (", ..." if len(have[key]) > 12 else "")
            raise ValueError(f"task {name or task.name!r}: {key[:-1]} {bad[0]!r} is not in the forget split; "
                             f"accepted: {shown}")
    kept = [f for f in forget if ("relations" not in wanted or f.relation in wanted["relations"])
            and ("subjects" not in wanted or f.subject in wanted["subjects"])]
    if not kept:
        raise ValueError(f"task {name or task.name!r}: no forget fact has both those relations and subjects")
    return dataclasses.replace(task, name=name or f"{task.name}?{query}", splits={**task.splits, "forget": kept})


def _base_task(loaded, name: str):
    if name == "default":
        return loaded.task()
    if name.startswith("real:"):
        if loaded.testbed is not None:
            raise ValueError(f"task {name!r}: the testbed models know only their fictitious world; "
                             f"use task 'default'")
        from .realworld import usable_task
        return usable_task(loaded, name.removeprefix("real:"))
    raise ValueError(f"task {name!r}: expected one of: {TASK_FORMS}")
