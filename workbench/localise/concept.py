"""Concept vectors (Hong et al. 2024, "Intrinsic evaluation of unlearning using parametric
knowledge traces", Sec. 3): MLP value vectors whose vocabulary projection matches the forget
concept, then kept only if perturbing them hurts the concept's questions and not unrelated ones.

Every value vector v_{L,j} (column j of the MLP down projection = TransformerLens
`W_out[j]`) is projected through the raw unembedding (no final norm). Candidates come from the
mid-to-upper layers by default (the paper's Llama-2-7B candidates: layers 18-25 of 32; here the
upper half, `all_layers=true` for every layer). Scorers:

- `resolved` (default): the projection of the vector in the direction it actually writes (the
  sign of its mean activation on forget text: SwiGLU coefficients can be negative), as z-scores
  over the vocabulary, averaged over each forget subject's lexicon (its name and answers; best
  subject) minus the same for the best retain or neighbour subject, kept where positive, times
  how selectively the neuron fires on forget text rather than retain text
  ((f - r) / (|f| + |r|), signed mean activations, clipped at 0). Continuous, so it resolves
  vectors the top-k counts tie; the remaining ties are broken at random (seeded).

- `overlap` (the paper's description): |top-k ∩ lexicon| / k.
- `entity` (default): the lexicon split per forget subject (its name and answers); a vector
  scores by how much of one subject's lexicon its top-k covers, minus the best coverage of
  any retain subject (vectors that write shared vocabulary, e.g. all city names, score ~0).

The paper's second step, the **causal filter** (`filter` candidates, default 20): each of the
top candidates gets N(0, (σ‖v‖)²) noise (σ = `filter_sigma`) alone; it is kept if the mean
answer log-probability of the forget facts (the train view's, in the training forms) falls, and
falls further than that of the retain facts by more than `filter_z` standard errors (per-example
drops, two independent samples): a single vector's noise moves log-probs a little everywhere, so
a bare "forget fell more than retain" would pass half of any set by chance. Kept candidates rank
above the others (in score order); the provenance holds the pass rate and each candidate's drops.
The faithfulness check of the result is `workbench.faithfulness` (`concept_noise_check`: noise on
the top vectors, against the same held-out sets).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from ..errors import WorkbenchInputError
from ..hooks import hook_session
from ..models.arch import resolve, table_for
from ..models.readouts import top_tokens, value_vectors, vocab_projection
from ..models.scoring import score_examples
from ..progress import tqdm
from ..sites import HookSite, NeuronSite, SiteKind, WeightSite
from ..tasks.prompts import answer_batches, split_examples
from .base import Localiser, check_layers, register
from .localisation import Localisation

_STOP = {"the", "a", "an", "of", "is", "in", "and", "to", "was", "by", "for", "at", "on", "as"}


@dataclass(frozen=True)
class ConceptConfig:
    top_k: int | None = None  # tokens per vector (overlap, entity); None = min(200, vocab/20)
    scorer: Literal["resolved", "entity", "overlap"] = "resolved"
    layers: tuple[int, ...] | None = None  # None = the upper half (mid-to-upper, as the paper)
    all_layers: bool = False  # every layer (when `layers` is not given)
    filter: int = 20  # candidates the causal filter tests (0 = no filter)
    filter_sigma: float = 1.0  # noise scale relative to the vector's norm
    filter_z: float = 2.0  # standard errors by which the forget drop must exceed the retain drop
    max_facts: int | None = 40  # facts per split for activations and the filter
    seed: int = 0

    def check(self):
        if self.top_k is not None and self.top_k < 1:
            raise WorkbenchInputError(f"option top_k={self.top_k}: expected a positive integer")
        if self.filter < 0 or self.filter_sigma <= 0 or self.filter_z < 0:
            raise WorkbenchInputError(f"options filter={self.filter}, filter_sigma={self.filter_sigma}, filter_z="
                                      f"{self.filter_z}: expected filter >= 0, filter_sigma > 0, filter_z >= 0")
        if self.max_facts is not None and self.max_facts < 1:
            raise WorkbenchInputError(f"option max_facts={self.max_facts}: expected a positive integer")


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


@torch.no_grad()
def mean_activations_by_neuron(loaded, examples, layers: list[int], batch_size: int = 64) -> dict[int, torch.Tensor]:
    """Per layer: [d_mlp] mean MLP activation (the down projection's input) over every real
    token of the examples' prompt + answer but the first."""
    model, tok = loaded.model, loaded.tokenizer
    points = {L: resolve(HookSite(L, "mlp.hook_post"), model) for L in layers}
    sums: dict[int, torch.Tensor] = {}
    count = 0
    with hook_session(model) as hs:
        store: dict = {}
        for L, r in points.items():
            hs.read(r.module, r.io, store, L)
        for ids, mask, _ in answer_batches(tok, examples, batch_size):
            model(input_ids=ids, attention_mask=mask)
            real = mask.bool().clone()
            real[:, 0] = False
            for L in layers:
                sums[L] = sums.get(L, 0) + store[L].float()[real].sum(0)
            count += int(real.sum())
    return {L: v / max(count, 1) for L, v in sums.items()}


def _lexicon_z(z: torch.Tensor, lexicons: list[set[int]]) -> torch.Tensor:
    """[n] the best mean z-score over one lexicon's tokens, per row of `z` [n, V]."""
    if not lexicons:
        return torch.zeros(z.shape[0])
    member = torch.zeros((len(lexicons), z.shape[1]), dtype=torch.float32)
    for i, lex in enumerate(lexicons):
        member[i, list(lex)] = 1.0 / max(1, len(lex))
    return (z @ member.T).max(-1).values


def causal_filter(loaded, task, candidates: list[NeuronSite], sigma: float, z: float, max_facts, seed: int):
    """The paper's second step (module docstring): per candidate, the forget and retain mean
    answer log-prob drops under N(0, (σ‖v‖)²) noise on that vector alone, and whether it passes."""
    model = loaded.model
    examples = {s: split_examples(task, s, max_facts, seed) for s in ("forget", "retain")}

    def logp() -> dict[str, list[float]]:
        return {s: [x.logprob for x in score_examples(model, loaded.tokenizer, exs, 128)] for s, exs in examples.items()}

    def mean_se(xs: list[float]) -> tuple[float, float]:
        m = sum(xs) / len(xs)
        var = sum((x - m) ** 2 for x in xs) / max(1, len(xs) - 1)
        return m, (var / len(xs)) ** 0.5
    base = logp()
    gen = torch.Generator().manual_seed(seed)
    out = []
    for site in candidates:
        ps = resolve(site, model).params[0]  # the value vector
        param = model.get_parameter(ps.name)
        with torch.no_grad():
            saved = param[ps.index].clone()
            param[ps.index] += torch.randn(saved.shape, generator=gen).to(saved.dtype) * sigma * float(saved.norm())
        try:
            after = logp()
        finally:
            with torch.no_grad():  # the vector back, bit for bit
                param[ps.index] = saved
        (f, sf), (r, sr) = (mean_se([b - a for b, a in zip(base[s], after[s])]) for s in ("forget", "retain"))
        out.append({"site": str(site), "forget_drop": f, "retain_drop": r,
                    "kept": f > 0 and f - r > z * (sf ** 2 + sr ** 2) ** 0.5})
    return out


@register
class ConceptVectors(Localiser):
    name = "concept"
    kinds = frozenset({SiteKind.NEURON})
    summary = ("MLP value vectors whose signed vocabulary projection matches the forget concept and that fire "
               "on it, kept by the paper's noise filter")
    Config = ConceptConfig
    version = 2  # 2: the resolved scorer, mid-to-upper layers, the causal filter

    def localise(self, loaded, task, config: ConceptConfig, progress: bool) -> Localisation:
        model = loaded.model
        table = table_for(model)
        if "neuron" not in table.units:
            raise WorkbenchInputError(f"concept vectors need dense MLP value vectors; {table.name} models have none "
                             f"(use method 'experts' or a weight localiser)")
        n_layers = model.config.num_hidden_layers
        if config.layers is None and not config.all_layers:
            layers = list(range(n_layers // 2, n_layers))  # mid-to-upper
        else:
            layers = check_layers(model, config.layers)
        vocab = resolve(WeightSite(None, "unembed.W_U"), model).params[0].view(model).shape[0]
        k = config.top_k or min(200, max(5, vocab // 20))
        prov: dict = {"top_k": k, "layers": layers}
        if config.scorer == "resolved":
            scores, sites = self._resolved(loaded, task, config, layers, progress)
        else:
            scores, sites = self._topk(loaded, task, config, layers, k, progress)
        gen = torch.Generator().manual_seed(config.seed)
        scores = scores + torch.rand(scores.shape, generator=gen) * 1e-6 * (float(scores.abs().max()) or 1.0)
        if config.filter:
            order = scores.argsort(descending=True)[: config.filter].tolist()
            tested = causal_filter(loaded, task, [sites[i] for i in order], config.filter_sigma,
                                   config.filter_z, config.max_facts, config.seed)
            lift = float(scores.max() - scores.min()) + 1.0  # kept candidates rank above every other vector
            for i, t in zip(order, tested):
                if t["kept"]:
                    scores[i] += lift
            prov["filter"] = tested
            prov["filter_pass_rate"] = sum(t["kept"] for t in tested) / len(tested)
        return Localisation(tuple(sites), scores, prov)

    def _resolved(self, loaded, task, config, layers, progress):
        model, tok = loaded.model, loaded.tokenizer
        exs = {s: split_examples(task, s, config.max_facts, config.seed) for s in ("forget", "retain")}
        acts = {s: mean_activations_by_neuron(loaded, e, layers) for s, e in exs.items()}
        forget_lex = entity_lexicons(tok, task.facts("forget"))
        retain_lex = entity_lexicons(tok, task.facts("retain") + task.facts("neighbour"))
        sites, scores = [], []
        for layer in tqdm(layers, desc="concept vectors", disable=not progress):
            f, r = acts["forget"][layer], acts["retain"][layer]
            sign = torch.where(f >= 0, 1.0, -1.0)
            logits = vocab_projection(model, value_vectors(model, layer) * sign[:, None])
            z = (logits - logits.mean(-1, keepdim=True)) / logits.std(-1, keepdim=True).clamp(min=1e-8)
            proj = (_lexicon_z(z, forget_lex) - _lexicon_z(z, retain_lex)).clamp(min=0)
            fs, rs = sign * f, sign * r
            selectivity = ((fs - rs) / (fs.abs() + rs.abs()).clamp(min=1e-8)).clamp(min=0)
            sites.extend(NeuronSite(layer, j) for j in range(logits.shape[0]))
            scores.append(proj * selectivity)
        return torch.cat(scores), sites

    def _topk(self, loaded, task, config, layers, k, progress):
        model, tok = loaded.model, loaded.tokenizer
        vocab = resolve(WeightSite(None, "unembed.W_U"), model).params[0].view(model).shape[0]
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
        return torch.cat(scores), sites
