"""Editing operators: ablations and masked fine-tuning on any localisation, as `Edit` values.

    from workbench.edit import apply_operator, Edit
    edit = apply_operator(loaded, localisation, task, "npo", {"fraction": 0.05})
    with edit.applied(loaded.model): ...      # scoped; weights restored bit-identically after
    edit.save(dir); Edit.load(dir); edit.export(loaded, hf_dir)
"""
from .edit import Edit, Intervention
from .losses import LOSSES
from .operators import OPERATORS, apply_operator, apply_operator_cached

__all__ = ["Edit", "Intervention", "LOSSES", "OPERATORS", "apply_operator", "apply_operator_cached"]
