"""Concept vectors (Hong et al. 2024): MLP value vectors whose vocabulary projection
matches the forget concept.

Every value vector v_{L,j} (column j of the MLP down projection = TransformerLens
`W_out[j]`) is projected through the raw unembedding (no final norm); its top-k tokens are
compared with the task's concept lexicon. Scorers:

- `overlap` (the paper's description): |top-k ∩ lexicon| / k.
- `entity` (default): the lexicon split per forget subject (its name and answers); a vector
  scores by how much of one subject's lexicon its top-k covers, minus the best coverage of
  any retain subject (vectors that write shared vocabulary, e.g. all city names, score ~0).

Its causal check (noise on the top vectors) is `workbench.faithfulness.concept_noise_check`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from ..errors import WorkbenchInputError
from ..models.arch import resolve, table_for
from ..models.readouts import top_tokens, value_vectors
from ..progress import tqdm
from ..sites import NeuronSite, SiteKind, WeightSite
from .base import Localiser, check_layers, register
from .localisation import Localisation

_STOP = {"the", "a", "an", "of", "is", "in", "and", "to", "was", "by", "for", "at", "on", "as"}


@dataclass(frozen=True)
class ConceptConfig:
    top_k: int | None = None  # tokens per vector; None = min(200, vocab/20)
    scorer: Literal["entity", "overlap"] = "entity"
    layers: tuple[int, ...] | None = None  # None = every layer

    def check(self):
        if self.top_k is not None and self.top_k < 1:
            raise WorkbenchInputError(f"option top_k={self.top_k}: expected a positive integer")


def _tokens(tokenizer, words) -> set[int]:
    out: set[int] = set()
    for w in words:
        for text in (" " + w, w):
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            if ids:
                out.add(ids[0])
    return out


def entity_lexicons(tokenizer, facts) -> list[set[int]]:
    by_subject: dict[str, list[str]] = {}
    for f in facts:
        words = [w for w in (*f.subject.split(), *f.answer.split()) if w.lower() not in _STOP]
        by_subject.setdefault(f.subject, []).extend(words)
    return [_tokens(tokenizer, ws) for _, ws in sorted(by_subject.items())]


def _coverage(top: torch.Tensor, lexicons: list[set[int]], vocab: int) -> torch.Tensor:
    """[n] best fraction of one lexicon found in each row's top tokens."""
    if not lexicons:
        return torch.zeros(top.shape[0])
    member = torch.zeros((len(lexicons), vocab), dtype=torch.float32)
    for i, lex in enumerate(lexicons):
        member[i, list(lex)] = 1.0
    hits = member[:, top].sum(-1)  # [E, n]
    sizes = torch.tensor([max(1, min(top.shape[1], len(x))) for x in lexicons], dtype=torch.float32)
    return (hits / sizes[:, None]).max(0).values


@register
class ConceptVectors(Localiser):
    name = "concept"
    kinds = frozenset({SiteKind.NEURON})
    summary = "MLP value vectors whose vocabulary projection matches the forget concept"
    Config = ConceptConfig

    def localise(self, loaded, task, config: ConceptConfig, progress: bool) -> Localisation:
        model, tok = loaded.model, loaded.tokenizer
        table = table_for(model)
        if "neuron" not in table.units:
            raise WorkbenchInputError(f"concept vectors need dense MLP value vectors; {table.name} models have none "
                             f"(use method 'experts' or a weight localiser)")
        layers = check_layers(model, config.layers)
        vocab = resolve(WeightSite(None, "unembed.W_U"), model).params[0].view(model).shape[0]
        k = config.top_k or min(200, max(5, vocab // 20))
        if config.scorer == "overlap":
            lexicon = _tokens(tok, [w for w in task.lexicon if w.lower() not in _STOP])
            forget_lex, retain_lex = [lexicon], []
        else:
            forget_lex = entity_lexicons(tok, task.facts("forget"))
            retain_lex = entity_lexicons(tok, task.facts("retain") + task.facts("neighbour"))
        sites, scores = [], []
        for layer in tqdm(layers, desc="concept vectors", disable=not progress):
            top = top_tokens(model, value_vectors(model, layer), k)
            score = _coverage(top, forget_lex, vocab)
            if config.scorer == "overlap":
                score = score * min(k, len(forget_lex[0])) / k
            else:
                score = score - _coverage(top, retain_lex, vocab)
            sites.extend(NeuronSite(layer, j) for j in range(top.shape[0]))
            scores.append(score)
        return Localisation(tuple(sites), torch.cat(scores), {"top_k": k})
