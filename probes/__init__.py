"""Probes: does the knowledge really leave the model? Behaviour in many formats, TOFU/MUSE
metrics, membership inference, parametric traces, latent probes, prompt-level and
relearning attacks, measured on the original, the edited and the oracle model side by side.

    from probes import probe, ProbeConfig
    result = probe(loaded, task, edit=edit, oracle="auto", config={"max_facts": 50, "relearn.steps": 10})
    print(result.table())

Adding a family: one module here (a `ProbeFamily` subclass decorated with `@register`) and its
import below.
"""
# registration order is the default order of the families (and of their metrics in a result)
from . import behaviour, tofu, muse, traces, latent, relearn, prompt_attacks  # noqa: F401, I001
from .base import FAMILIES, Context, EditLike, ProbeConfig, ProbeFamily
from .result import DIRECTIONS, ROLES, Metric, ProbeResult
from .run import probe

__all__ = ["FAMILIES", "Context", "EditLike", "ProbeConfig", "ProbeFamily", "DIRECTIONS", "ROLES", "Metric",
           "ProbeResult", "probe"]
