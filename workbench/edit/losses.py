"""Unlearning losses as small objects run by one trainer loop (`trainer.py`), each with its
own frozen config.

Each loss sees a `Step` (forget and retain batches, the model's outputs on them, and a
frozen reference where it needs one) and returns named parts; the trainer adds them up
(total = forget_weight · forget part + retain_weight · retain part). Notation as in
ALGORITHMS.md: NLL = per-sequence **sum** over answer tokens, CE = mean over answer tokens.
`reduction="sum"` uses per-sequence sums (the papers' NPO), `"mean"` per-token means.

Configs: `FineTuneConfig` holds what every fine-tuning operator shares (the mask budget and
the trainer's options); each loss's config adds its own options and names its `kind`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F

from ..registry import Registry, check_positive, check_range

LOSSES: Registry = Registry("unlearning loss")


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(label) per position (shifted) and the answer-token mask: both [b, n-1]."""
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    target = labels[:, 1:]
    mask = target != -100
    lp = logp.gather(-1, target.clamp(min=0)[..., None]).squeeze(-1)
    return lp * mask, mask


def seq_nll(logits, labels, reduction: str = "sum") -> torch.Tensor:
    """[b] per-sequence answer NLL: sum over tokens, or mean per token."""
    lp, mask = token_logprobs(logits, labels)
    nll = -lp.sum(-1)
    return nll if reduction == "sum" else nll / mask.sum(-1).clamp(min=1)


def mean_ce(logits, labels) -> torch.Tensor:
    lp, mask = token_logprobs(logits, labels)
    return -lp.sum() / mask.sum().clamp(min=1)


def retain_term(kind: str, logits, labels, ref_logits=None) -> torch.Tensor:
    """NLL (mean CE) or KL(π_ref ‖ π_θ) over answer tokens of retain prompts (padding masked)."""
    if kind == "nll":
        return mean_ce(logits, labels)
    mask = (labels[:, 1:] != -100)
    p_ref = torch.log_softmax(ref_logits[:, :-1].float(), -1)
    p = torch.log_softmax(logits[:, :-1].float(), -1)
    kl = (p_ref.exp() * (p_ref - p)).sum(-1)
    return (kl * mask).sum() / mask.sum().clamp(min=1)


@dataclass
class Step:
    forget_logits: torch.Tensor
    forget_labels: torch.Tensor
    retain_logits: torch.Tensor | None
    retain_labels: torch.Tensor | None
    ref_forget_nll: torch.Tensor | None = None  # [b] reference NLL (NPO)
    ref_retain_logits: torch.Tensor | None = None  # (KL retain term)
    forget_mask: torch.Tensor | None = None  # attention masks [b, n]
    retain_mask: torch.Tensor | None = None
    forget_hidden: torch.Tensor | None = None  # RMU: h_L on forget
    retain_hidden: torch.Tensor | None = None
    ref_retain_hidden: torch.Tensor | None = None
    router_probs: torch.Tensor | None = None  # UOE: router softmax [b, n, E] at the anchored layer


def anchor_term(probs: torch.Tensor, expert: int, mask: torch.Tensor) -> torch.Tensor:
    """UOE router anchor: mean over real tokens of ‖g − onehot(expert)‖²."""
    target = torch.zeros(probs.shape[-1], device=probs.device)
    target[expert] = 1.0
    sq = ((probs.float() - target) ** 2).sum(-1)
    return (sq * mask).sum() / mask.sum().clamp(min=1)


@dataclass(frozen=True)
class FineTuneConfig:
    """Options every fine-tuning operator shares: which parameters may move (the top `k` or
    `fraction` of the localisation's sites or scored weights; no localisation = the whole
    model) and the trainer's options."""
    k: int | None = None
    fraction: float | None = None  # default 0.05 when a localisation is given
    forget_weight: float = 1.0
    steps: int = 60
    lr: float = 1e-3
    batch_size: int = 32
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    eval_every: int = 0  # 0 = no evaluation during training
    collapse_retain: float | None = None  # stop when retain accuracy drops below this
    eval_facts: int = 60
    seed: int = 0
    kind: ClassVar[str] = ""

    def check(self):
        check_positive(self, "steps", "batch_size", "eval_facts", "k")
        check_range(self, "lr", 0, low_open=True)
        check_range(self, "fraction", 0, 1, low_open=True)
        for key in ("forget_weight", "weight_decay", "max_grad_norm", "eval_every"):  # max_grad_norm 0: no clipping
            check_range(self, key, 0)
        check_range(self, "collapse_retain", 0, 1)
        for key, low, high, *open_ in getattr(self, "RANGES", ()):  # a loss's own options: (key, low, high[, open])
            check_range(self, key, low, high, low_open=bool(open_ and open_[0]))


@dataclass(frozen=True)
class RetainConfig(FineTuneConfig):
    """A loss with a retain term: NLL (mean CE) or KL to the original on retain prompts."""
    retain_weight: float = 1.0
    retain: Literal["nll", "kl"] = "nll"
    # share of each retain batch from retain subjects sharing a name part with a forget subject
    retain_similar: float = 0.0
    RANGES: ClassVar[tuple] = (("retain_weight", 0, None), ("retain_similar", 0, 1))


@dataclass(frozen=True)
class GAConfig(FineTuneConfig):
    kind: ClassVar[str] = "ga"


@dataclass(frozen=True)
class GradDiffConfig(RetainConfig):
    kind: ClassVar[str] = "graddiff"


@dataclass(frozen=True)
class NPOConfig(RetainConfig):
    beta: float = 0.1
    reduction: Literal["sum", "mean"] = "sum"
    kind: ClassVar[str] = "npo"
    RANGES: ClassVar[tuple] = (*RetainConfig.RANGES, ("beta", 0, None, True))


@dataclass(frozen=True)
class SimNPOConfig(RetainConfig):
    beta: float = 2.5
    delta: float = 0.0
    kind: ClassVar[str] = "simnpo"
    RANGES: ClassVar[tuple] = (*RetainConfig.RANGES, ("beta", 0, None, True))
    RENAMED: ClassVar[dict] = {"simnpo_beta": "beta", "simnpo_delta": "delta"}


@dataclass(frozen=True)
class MUConfig(RetainConfig):
    floor: float = -5.0  # the loss stops at log p < floor
    kind: ClassVar[str] = "mu"
    RENAMED: ClassVar[dict] = {"mu_floor": "floor"}


@dataclass(frozen=True)
class RMUConfig(RetainConfig):
    layer: int | None = None  # None = the middle layer
    c: float | None = None  # None = scale x the mean residual norm at layer L (small models)
    scale: float = 4.0
    alpha: float = 100.0
    kind: ClassVar[str] = "rmu"
    RANGES: ClassVar[tuple] = (*RetainConfig.RANGES, ("c", 0, None), ("scale", 0, None), ("alpha", 0, None))
    RENAMED: ClassVar[dict] = {"rmu_layer": "layer", "rmu_c": "c", "rmu_scale": "scale", "rmu_alpha": "alpha"}


class Loss:
    """A loss: its `name`, its `Config` and what the trainer must give it in a `Step`."""
    name: ClassVar[str]
    Config: ClassVar[type[FineTuneConfig]]
    needs_ref: ClassVar[bool] = False  # reference NLL on forget (NPO)
    uses_hidden: ClassVar[bool] = False  # RMU

    @classmethod
    def uses_retain(cls) -> bool:
        return issubclass(cls.Config, RetainConfig)

    def forget_part(self, step: Step, cfg) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, step: Step, cfg) -> dict[str, torch.Tensor]:
        parts = {"forget": self.forget_part(step, cfg)}
        if step.retain_logits is not None and cfg.retain_weight:
            parts["retain"] = self.retain_part(step, cfg)
        return parts

    def retain_part(self, step: Step, cfg: RetainConfig) -> torch.Tensor:
        return retain_term(cfg.retain, step.retain_logits, step.retain_labels, step.ref_retain_logits)


def register(cls):
    LOSSES.register(cls.name)(cls)
    return cls


@register
class GA(Loss):
    """Gradient ascent on the forget set: −CE_f (no retain term)."""
    name = "ga"
    Config = GAConfig

    def forget_part(self, step, cfg):
        return -mean_ce(step.forget_logits, step.forget_labels)

    def __call__(self, step, cfg):
        return {"forget": self.forget_part(step, cfg)}


@register
class GradDiff(Loss):
    """−CE_f + λ·retain term."""
    name = "graddiff"
    Config = GradDiffConfig

    def forget_part(self, step, cfg):
        return -mean_ce(step.forget_logits, step.forget_labels)


@register
class NPO(Loss):
    """−(2/β) E log σ(β·(NLL_θ − NLL_ref)) on forget + retain term."""
    name = "npo"
    Config = NPOConfig
    needs_ref = True

    def forget_part(self, step, cfg):
        nll = seq_nll(step.forget_logits, step.forget_labels, cfg.reduction)
        return -(2 / cfg.beta) * F.logsigmoid(cfg.beta * (nll - step.ref_forget_nll)).mean()


@register
class SimNPO(Loss):
    """−(2/β) E log σ(β·(NLL_θ/|y| − δ)), no reference model."""
    name = "simnpo"
    Config = SimNPOConfig

    def forget_part(self, step, cfg):
        nll = seq_nll(step.forget_logits, step.forget_labels, "mean")
        return -(2 / cfg.beta) * F.logsigmoid(cfg.beta * (nll - cfg.delta)).mean()


@register
class MechUnlearn(Loss):
    """−log(1 − p(answer)) per answer token, zeroed once log p < floor (Guo et al.)."""
    name = "mu"
    Config = MUConfig

    def forget_part(self, step, cfg):
        logits = step.forget_logits[:, :-1].float()
        target = step.forget_labels[:, 1:]
        mask = target != -100
        t = target.clamp(min=0)
        lse_all = torch.logsumexp(logits, -1)
        others = logits.scatter(-1, t[..., None], float("-inf"))
        loss = torch.logsumexp(others, -1) - lse_all  # = log(1 - p)
        logp = logits.gather(-1, t[..., None]).squeeze(-1) - lse_all
        active = mask & (logp >= cfg.floor)
        return -(loss * active).sum() / mask.sum().clamp(min=1)


@register
class RMU(Loss):
    """MSE(h_L(x_f), c·u) + α·MSE(h_L(x_r), h_L^frozen(x_r)) at `hook_resid_post` of layer L."""
    name = "rmu"
    Config = RMUConfig
    uses_hidden = True

    def __init__(self):
        self.u = None
        self.c = None

    def forget_part(self, step, cfg):
        h = step.forget_hidden.float()
        if self.u is None:
            gen = torch.Generator().manual_seed(0)
            u = torch.rand(h.shape[-1], generator=gen)
            self.u = u / u.norm()
        mask = step.forget_mask.bool()  # every real token of the forget text
        if self.c is None:  # fixed at the first batch (θ₀)
            self.c = cfg.c if cfg.c is not None else cfg.scale * float(h.detach().norm(dim=-1)[mask].mean())
        target = self.c * self.u.to(h.device)
        return ((h - target) ** 2).mean(-1)[mask].mean()

    def retain_part(self, step, cfg):
        mask = step.retain_mask.bool()
        diff = ((step.retain_hidden.float() - step.ref_retain_hidden.float()) ** 2).mean(-1)
        return cfg.alpha * diff[mask].mean()
