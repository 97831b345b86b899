"""Probes: does the knowledge really leave the model? Behaviour in many formats, TOFU/MUSE
metrics, membership inference, parametric traces, latent probes, prompt-level and
relearning attacks, measured on the original, the edited and the oracle model side by side.

    from probes import probe, ProbeConfig
    result = probe(loaded, task, edited=None, oracle="auto", config=ProbeConfig())
    print(result.table())
"""
from .base import FAMILIES, FAMILY_NAMES, ProbeConfig
from .result import DIRECTIONS, ROLES, Metric, ProbeResult
from .run import Edited, probe

__all__ = ["FAMILIES", "FAMILY_NAMES", "ProbeConfig", "DIRECTIONS", "ROLES", "Metric", "ProbeResult",
           "Edited", "probe"]
