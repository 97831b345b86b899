"""Language-model training for the testbed models: the CPU recipe that makes them learn.

Short texts are batched by length (little padding, no cross-text attention), AdamW with a
linear warm-up and a cosine decay, loss on every real token. Deterministic for one seed.
"""
from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import torch

from ..errors import WorkbenchInputError
from ..progress import tqdm


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 4000
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.1
    warmup: float = 0.05
    final_lr_fraction: float = 0.05
    grad_clip: float = 1.0
    # "bf16": matmuls in bfloat16 under autocast (weights, optimiser and loss stay fp32);
    # on CPUs with AVX512-BF16 a dense testbed step takes 26 ms instead of 47 ms. Where the
    # CPU has no bf16 instructions `resolved()` trains in fp32 instead (see `native_bf16`).
    precision: str = "fp32"

    def to_dict(self) -> dict:
        return asdict(self)

    def resolved(self) -> "TrainConfig":
        """This config as this machine trains it: bf16 only where the CPU computes it natively."""
        if self.precision == "bf16" and not native_bf16():
            return TrainConfig(**{**asdict(self), "precision": "fp32"})
        return self


@lru_cache(maxsize=1)
def native_bf16() -> bool:
    """Whether this CPU has bf16 matrix instructions (AVX512-BF16 or AMX-BF16, read from
    /proc/cpuinfo). Without them PyTorch emulates bf16 matmuls: a dense testbed step took
    1,227 ms in bf16 against 120 ms in fp32 on an AVX2-only AMD EPYC, so bf16 would make
    training ten times slower there instead of twice as fast."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _batches(seqs: list[list[int]], batch_size: int, rng: random.Random):
    """Endless stream of batches: per epoch shuffle, sort within windows by length."""
    while True:
        order = list(range(len(seqs)))
        rng.shuffle(order)
        window = batch_size * 16
        batches = []
        for w in range(0, len(order), window):
            chunk = sorted(order[w : w + window], key=lambda i: len(seqs[i]))
            batches += [chunk[b : b + batch_size] for b in range(0, len(chunk), batch_size)]
        rng.shuffle(batches)
        yield from batches


def collate(seqs, idx, pad_id):
    """Right-padded (ids, labels, attention mask) of the sequences `idx` (labels -100 on padding)."""
    width = max(len(seqs[i]) for i in idx)
    ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
    labels = torch.full((len(idx), width), -100, dtype=torch.long)
    mask = torch.zeros((len(idx), width), dtype=torch.long)
    for r, i in enumerate(idx):
        s = torch.tensor(seqs[i])
        ids[r, : len(s)] = s
        labels[r, : len(s)] = s
        mask[r, : len(s)] = 1
    return ids, labels, mask


def train_lm(model, seqs: list[list[int]], pad_id: int, cfg: TrainConfig, seed: int,
             desc: str = "training", progress: bool = True, position: int = 0) -> list[float]:
    """Train `model` in place on token sequences; returns the loss every 50 steps."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(0.9, 0.98),
    )
    warm = max(1, int(cfg.warmup * cfg.steps))

    def lr_at(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        t = (step - warm) / max(1, cfg.steps - warm)
        return cfg.final_lr_fraction + (1 - cfg.final_lr_fraction) * 0.5 * (1 + math.cos(math.pi * t))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    model.train()
    losses, running = [], 0.0
    stream = _batches(seqs, cfg.batch_size, rng)
    if cfg.precision not in ("fp32", "bf16"):
        raise WorkbenchInputError(f"precision {cfg.precision!r}: expected fp32 or bf16")
    device = next(model.parameters()).device.type
    bar = tqdm(range(cfg.steps), desc=desc, disable=not progress, leave=False, position=position)
    for step in bar:
        ids, labels, mask = collate(seqs, next(stream), pad_id)
        # HF shifts the labels; for MoE configs with output_router_logits the loss
        # includes the router load-balancing term.
        with torch.autocast(device, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        running += loss.item()
        if (step + 1) % 50 == 0:
            losses.append(running / 50)
            bar.set_postfix(loss=f"{running / 50:.3f}")
            running = 0.0
    model.eval()
    return losses
