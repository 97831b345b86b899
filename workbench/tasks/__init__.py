"""Forget tasks: facts, surface forms and forget / retain / neighbour splits."""


TASK_FORMS = "default (the model's own task), real:TOPIC (a real-knowledge topic, pretrained models only)"


def task_for(loaded, name: str = "default"):
    """The forget task called `name` for a loaded model."""
    if name in ("default", "", None):
        return loaded.task()
    if name.startswith("real:"):
        if loaded.testbed is not None:
            raise ValueError(f"task {name!r}: the testbed models know only their fictitious world; "
                             f"use task 'default'")
        from .realworld import usable_task
        return usable_task(loaded, name.removeprefix("real:"))
    raise ValueError(f"task {name!r}: expected one of: {TASK_FORMS}")
