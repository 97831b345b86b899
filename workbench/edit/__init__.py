"""Editing operators: ablations, masked fine-tuning and closed-form edits on any localisation,
as `Edit` values.

    from workbench.edit import apply_operator, Edit
    edit = apply_operator(loaded, localisation, task, "npo", {"fraction": 0.05})
    with edit.applied(loaded.model): ...      # scoped; weights restored bit-identically after
    edit.save(dir); Edit.load(dir); edit.export(loaded, hf_dir)

Adding an operator: one module here (an `Operator` subclass decorated with `@register`) and
its import below.
"""
from . import ablations, finetune, closed_form  # noqa: F401, I001  (registers the operators, in their listing order)
from .edit import Edit
from .interventions import ACTIONS, Intervention
from .losses import LOSSES
from .registry import OPERATORS, Operator, apply_operator, apply_operator_cached

__all__ = ["ACTIONS", "Edit", "Intervention", "LOSSES", "OPERATORS", "Operator", "apply_operator",
           "apply_operator_cached"]
