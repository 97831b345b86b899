"""Localisers: where does the forget knowledge live? Each returns a `Localisation`.

    from workbench.localise import localise, LOCALISERS
    loc = localise(loaded, task, "circuits", {"mode": "flu"})
    loc.top(fraction=0.01); loc.mask(loaded.model, fraction=0.05); loc.save(path)

Adding a localiser: one module here (a `Localiser` subclass decorated with `@register`) and its
import below.
"""
from . import circuits, concept, experts, sae_features, weights  # noqa: F401  (registers the localisers)
from .agreement import agreement, agreement_matrix, spearman
from .base import LOCALISERS, Localiser, localise, localise_cached
from .localisation import Localisation

__all__ = ["LOCALISERS", "Localiser", "Localisation", "localise", "localise_cached", "agreement",
           "agreement_matrix", "spearman"]
