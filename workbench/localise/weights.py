"""Weight attribution: a score per scalar weight, for masks over all parameters.

- `wagle` (Jia et al. 2024, Sec. 4, Eq. 8): S = |(θ − ∇ℓ_r/γ) · ∇ℓ_f|, as the authors' code
  computes it (OPTML-Group/WAGLE, `src/unlearn/generate_mask.py`, score `snip_advanced`): the
  retain gradient is paired with the forget gradient, one retain example drawn per forget
  example (seeded), and both are sums over examples of each example's mean answer-token
  cross-entropy gradient (their code: batch size 1, gradients summed), so γ has the authors'
  units (code default 1e-3; their released TOFU/WMDP configs use 1e-6, where the θ term barely
  counts). Their masks keep the top 95% (TOFU GradDiff/NPO), 80% (TOFU PO), 40-60% (WMDP) of the
  weights, ranked globally over every parameter.
- `salun` (Fan et al. 2024): S = |∇ℓ_f|
- `selective` (a workbench baseline): S = mean|∇ℓ_f| / (mean|∇ℓ_r| + ε), the per-batch
  forget saliency relative to retain saliency, so weights every fact needs rank low
- `snip`: S = |θ · ∇ℓ_f|;  `magnitude`: S = |θ|;  `random`: uniform noise (seeded)

Otherwise ℓ_f / ℓ_r are the mean answer-token cross-entropies of forget / retain prompts,
summed over all batches of the whole split at θ₀, accumulated in fp32. Operators take a global top
`update_fraction` of the scalars (`Localisation.mask(fraction=...)`).
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from ..registry import check_positive, check_range
from ..models.scoring import answer_ce
from ..progress import tqdm
from ..sites import SiteKind
from ..tasks.prompts import answer_batches, default_forms, split_examples
from .base import Localiser, register
from .localisation import Localisation, weight_localisation


def split_gradients(loaded, task, split: str, max_facts: int | None = None, batch_size: int = 64,
                    forms=None, progress: bool = False, seed: int = 0, n_examples: int | None = None,
                    per_example: bool = False) -> dict[str, torch.Tensor]:
    """Σ over batches of ∇ mean answer CE, fp32, keyed by parameter name. `n_examples`: a
    seeded sample of that many of the split's examples (with replacement where the split has
    fewer); `per_example`: each batch's gradient weighted by its number of examples (≈ the sum
    over examples of each one's mean answer CE, the units of a batch-size-1 loop)."""
    model, tok = loaded.model, loaded.tokenizer
    examples = split_examples(task, split, max_facts, seed, forms)
    if n_examples is not None:
        rng = random.Random(f"{seed}|{split}|paired")
        examples = (rng.sample(examples, n_examples) if n_examples <= len(examples)
                    else [rng.choice(examples) for _ in range(n_examples)])
    params = {n: p for n, p in model.named_parameters()}
    grads = {n: torch.zeros(p.shape, dtype=torch.float32) for n, p in params.items()}
    was_training = model.training
    model.eval()
    flags = {n: p.requires_grad for n, p in params.items()}
    try:
        for p in params.values():
            p.requires_grad_(True)
        n_batches = -(-len(examples) // batch_size)
        for ids, mask, labels in tqdm(answer_batches(tok, examples, batch_size), total=n_batches,
                                      desc=f"gradients ({split})", disable=not progress):
            loss = answer_ce(model, ids, mask, labels) * (ids.shape[0] if per_example else 1)
            g = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
            for n, gi in zip(params, g):
                if gi is not None:
                    grads[n] += gi.float()
    finally:
        for n, p in params.items():
            p.requires_grad_(flags[n])
        model.train(was_training)
    return grads


@dataclass(frozen=True)
class WeightConfig:
    gamma: float = 1e-3  # WAGLE Hessian-diagonal constant (code default; released configs 1e-6)
    max_facts: int | None = None  # None = the whole split
    batch_size: int = 64
    seed: int = 0
    eps: float = 1e-6  # `selective`: floor of the retain saliency

    def check(self):
        check_range(self, "gamma", 0, low_open=True)
        check_range(self, "eps", 0, low_open=True)
        check_positive(self, "batch_size", "max_facts")


class _WeightLocaliser(Localiser):
    kinds = frozenset({SiteKind.WEIGHT})
    Config = WeightConfig
    needs: tuple[str, ...] = ("forget",)

    def score(self, theta, g_f, g_r, config, gen) -> torch.Tensor:
        raise NotImplementedError

    def _batches(self, task, split, config) -> int:
        n = len(task.facts(split)) if config.max_facts is None else min(config.max_facts, len(task.facts(split)))
        return max(1, -(-n * len(default_forms(task)) // config.batch_size))

    def gradients(self, loaded, task, config: WeightConfig, progress: bool) -> dict[str, dict[str, torch.Tensor]]:
        """split -> summed gradients (`split_gradients`) of the splits the score needs."""
        return {s: split_gradients(loaded, task, s, config.max_facts, config.batch_size, progress=progress,
                                   seed=config.seed) for s in self.needs}

    def localise(self, loaded, task, config: WeightConfig, progress: bool) -> Localisation:
        model = loaded.model
        grads = self.gradients(loaded, task, config, progress)
        gen = torch.Generator().manual_seed(config.seed)
        self.n_batches = {s: self._batches(task, s, config) for s in self.needs}
        scores = {}
        with torch.no_grad():
            for n, p in model.named_parameters():
                scores[n] = self.score(p.detach().float(), grads.get("forget", {}).get(n),
                                       grads.get("retain", {}).get(n), config, gen)
        return weight_localisation(model, scores, {})


@register
class Wagle(_WeightLocaliser):
    name = "wagle"
    summary = "WAGLE: |(θ − ∇ℓ_r/γ)·∇ℓ_f| per weight, retain gradients paired with forget ones (authors' code)"
    needs = ("forget", "retain")
    version = 2  # 2: paired retain examples, gradients in per-example units

    def gradients(self, loaded, task, config, progress):
        forget = split_gradients(loaded, task, "forget", config.max_facts, config.batch_size, progress=progress,
                                 seed=config.seed, per_example=True)
        n = len(split_examples(task, "forget", config.max_facts, config.seed))  # one retain example per forget one
        retain = split_gradients(loaded, task, "retain", None, config.batch_size, progress=progress,
                                 seed=config.seed, n_examples=n, per_example=True)
        return {"forget": forget, "retain": retain}

    def score(self, theta, g_f, g_r, config, gen):
        return ((theta - g_r / config.gamma) * g_f).abs()


@register
class Salun(_WeightLocaliser):
    name = "salun"
    summary = "SalUn saliency: |Σ∇ℓ_f| per weight"

    def score(self, theta, g_f, g_r, config, gen):
        return g_f.abs()


@register
class Snip(_WeightLocaliser):
    name = "snip"
    summary = "SNIP baseline: |θ·∇ℓ_f| per weight"

    def score(self, theta, g_f, g_r, config, gen):
        return (theta * g_f).abs()


@register
class Magnitude(_WeightLocaliser):
    name = "magnitude"
    summary = "baseline: |θ| per weight"
    needs = ()

    def score(self, theta, g_f, g_r, config, gen):
        return theta.abs()


@register
class RandomWeights(_WeightLocaliser):
    name = "random"
    summary = "baseline: uniform random score per weight (seeded)"
    needs = ()

    def score(self, theta, g_f, g_r, config, gen):
        return torch.rand(theta.shape, generator=gen)


@register
class Selective(_WeightLocaliser):
    name = "selective"
    summary = "forget saliency relative to retain saliency: mean|∇ℓ_f| / (mean|∇ℓ_r| + ε)"
    needs = ("forget", "retain")

    def score(self, theta, g_f, g_r, config, gen):
        f = g_f.abs() / self.n_batches["forget"]
        r = g_r.abs() / self.n_batches["retain"]
        return f / (r + config.eps)
