"""Concept vectors (Hong et al. 2024): MLP value vectors whose vocabulary projection
matches the forget concept.

Every value vector v_{L,j} (column j of the MLP down projection = TransformerLens
`W_out[j]`) is projected through the raw unembedding (no final norm); its top-k tokens are
compared with the task's concept lexicon. Scorers:

- `overlap` (the paper's description): |top-k ∩ lexicon| / k.
- `entity` (default): the lexicon split per forget subject (its name and answers); a vector
  scores by how much of one subject's lexicon its top-k covers, minus the best coverage of
  any retain subject (vectors that write shared vocabulary, e.g. all city names, score ~0).

`causal_check` adds N(0, σ²) noise to the top vectors, measures the drop in forget and in
unrelated (retain) accuracy, and restores the weights bit-identically.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from workbench.progress import tqdm

from ..models.arch import resolve, table_for
from ..sites import NeuronSite, WeightSite
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
            raise ValueError(f"option top_k={self.top_k}: expected a positive integer")


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


def value_vectors(model, layer: int) -> torch.Tensor:
    """[d_mlp, d_model]: row j is value vector v_{L,j}."""
    ps = resolve(WeightSite(layer, "mlp.W_out"), model).params[0]
    return ps.view(model).detach().T


def vocab_projection(model, vectors: torch.Tensor) -> torch.Tensor:
    """[n, V] logits of each vector through the raw unembedding (no final norm)."""
    w_u = resolve(WeightSite(None, "unembed.W_U"), model).params[0].view(model).detach()
    return vectors.float() @ w_u.float().T


def top_tokens(model, vectors: torch.Tensor, k: int) -> torch.Tensor:
    return vocab_projection(model, vectors).topk(k, dim=-1).indices


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
    kind = "neuron"
    summary = "MLP value vectors whose vocabulary projection matches the forget concept"
    Config = ConceptConfig

    def localise(self, loaded, task, config: ConceptConfig, progress: bool) -> Localisation:
        model, tok = loaded.model, loaded.tokenizer
        table = table_for(model)
        if "neuron" not in table.units:
            raise ValueError(f"concept vectors need dense MLP value vectors; {table.name} models have none "
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
        return Localisation("neuron", tuple(sites), torch.cat(scores), {"top_k": k})


@torch.no_grad()
def causal_check(loaded, task, localisation: Localisation, n: int = 10, sigma: float = 0.1,
                 seed: int = 0, max_facts: int = 200) -> dict:
    """Noise on the top-n value vectors: forget and unrelated accuracy before/after.
    The weights are restored bit-identically (checked)."""
    from .faithfulness import accuracies

    model = loaded.model
    sites = [s for s in localisation.top(k=n) if isinstance(s, NeuronSite)]
    before = accuracies(loaded, task, max_facts=max_facts)
    gen = torch.Generator().manual_seed(seed)
    saved = {}
    for site in sites:
        ps = resolve(site, model).params[0]  # the value vector (down-projection column)
        if ps.name not in saved:
            saved[ps.name] = model.get_parameter(ps.name).detach().clone()
        view = ps.view(model)
        view.add_(torch.randn(view.shape, generator=gen) * sigma)
    try:
        after = accuracies(loaded, task, max_facts=max_facts)
    finally:
        for name, original in saved.items():
            model.get_parameter(name).copy_(original)
    restored = all(torch.equal(model.get_parameter(nm), t) for nm, t in saved.items())
    return {"vectors": len(sites), "sigma": sigma, "forget_before": before["forget"],
            "forget_after": after["forget"], "retain_before": before["retain"], "retain_after": after["retain"],
            "forget_drop": before["forget"] - after["forget"], "retain_drop": before["retain"] - after["retain"],
            "restored": restored}
