"""Localisers: where does the forget knowledge live? Each returns a `Localisation`.

    from workbench.localise import localise, LOCALISERS
    loc = localise(loaded, task, "circuits", {"mode": "flu"})
    loc.top(fraction=0.01); loc.mask(loaded.model, fraction=0.05); loc.save(path)
"""
from . import circuits, concept, experts, sae, weights  # noqa: F401  (registers the localisers)
from .base import LOCALISERS, Localiser, localise, localise_cached
from .faithfulness import agreement, faithfulness
from .localisation import Localisation, model_fingerprint

__all__ = ["LOCALISERS", "Localiser", "Localisation", "localise", "localise_cached", "faithfulness", "agreement",
           "model_fingerprint"]
