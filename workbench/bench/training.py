"""Training benchmarks: the masked unlearning trainer against a plain PyTorch loop, the plain
step's FLOP/s against the GEMM peak, and a study cell's time against facts and model size."""
from __future__ import annotations

import random
import statistics

import torch

from .compute import _peak
from .context import DEFAULT, REAL, SMALL, Context, short
from .core import Row, fit_exponent, interleaved, ratio_row, value_row

# --- the unlearning step ------------------------------------------------------------------

def plain_loop(loaded, task, cfg, steps: int) -> float:
    """The reference: NPO + retain NLL on every parameter with AdamW, the trainer's batches
    (same examples, same sampling), no masks, guards or bookkeeping. Restores the weights;
    returns the last loss."""
    from ..edit.losses import LOSSES, Step, seq_nll
    from ..edit.trainer import _batch, _examples

    model, tok = loaded.model, loaded.tokenizer
    loss_fn = LOSSES.get(cfg.kind)()
    rng = random.Random(cfg.seed)
    forget, retain = _examples(task, "forget"), _examples(task, "retain")
    parts_of = {w for ex in forget for w in ex.fact.subject.split()}
    similar = [ex for ex in retain if parts_of & set(ex.fact.subject.split())]
    saved = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        model.eval()
        ref = {}
        for i in range(0, len(forget), 64):
            chunk = forget[i : i + 64]
            ids, mask, labels = _batch(tok, chunk)
            ref.update(zip(map(id, chunk), seq_nll(model(input_ids=ids, attention_mask=mask).logits, labels,
                                                   cfg.reduction)))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    model.train()
    order: list = []
    last = float("nan")
    try:
        for _ in range(steps):
            if not order:
                order = list(range(len(forget)))
                rng.shuffle(order)
            idx, order = order[: cfg.batch_size], order[cfg.batch_size :]
            f_exs = [forget[i] for i in idx]
            n_sim = min(len(similar), round(cfg.retain_similar * cfg.batch_size))
            r_exs = rng.sample(similar, n_sim) + rng.sample(retain, min(cfg.batch_size - n_sim, len(retain)))
            f_ids, f_mask, f_labels = _batch(tok, f_exs)
            r_ids, r_mask, r_labels = _batch(tok, r_exs)
            step = Step(model(input_ids=f_ids, attention_mask=f_mask).logits, f_labels, None, None, forget_mask=f_mask)
            step.ref_forget_nll = torch.stack([ref[id(ex)] for ex in f_exs])
            step.retain_logits = model(input_ids=r_ids, attention_mask=r_mask).logits
            step.retain_labels, step.retain_mask = r_labels, r_mask
            parts = loss_fn(step, cfg)
            total = cfg.forget_weight * parts["forget"] + cfg.retain_weight * parts["retain"]
            opt.zero_grad(set_to_none=True)
            total.backward()
            if cfg.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(list(model.parameters()), cfg.max_grad_norm)
            opt.step()
            last = float(total.detach())
    finally:
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.copy_(saved[n])
        model.eval()
    return last


def _step_flops(loaded, task, cfg) -> int:
    """FLOPs of one plain step (forward and backward of a forget and a retain batch)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        plain_loop(loaded, task, cfg, 1)
    # the reference NLL pass over every forget example is counted too: take it out
    with FlopCounterMode(display=False) as ref_only:
        plain_loop(loaded, task, cfg, 0)
    return counter.get_total_flops() - ref_only.get_total_flops()


def step(ctx: Context) -> list[Row]:
    from ..edit.losses import NPOConfig
    from ..edit.trainer import unlearn
    from ..localise import localise

    rows = []
    for spec in ctx.specs([DEFAULT]):
        m = ctx.model(spec)
        task = m.task()
        steps = 4 if ctx.quick else 20
        cfg = NPOConfig(steps=steps)
        masks = {
            "unmasked": None,
            "weight mask 5% (selective)": localise(m, task, "selective", {}, progress=False).mask(m.model, fraction=0.05),
            "neuron mask 5% (circuits)": localise(m, task, "circuits", {"nodes": "neuron"}, progress=False).mask(
                m.model, fraction=0.05),
        }
        fns = {"plain": ctx.timed(lambda: plain_loop(m, task, cfg, steps))}
        for name, mask in masks.items():
            fns[name] = ctx.timed(lambda mask=mask: unlearn(m, task, cfg, mask, progress=False))
        times = interleaved(fns, ctx.repeats)
        for name, mask in masks.items():
            trainable = "all" if mask is None else f"{sum(int(x.sum()) for x in mask.values()):,}"
            rows.append(ratio_row("step", f"trainer, {name} | {short(spec)}", "plain PyTorch loop", times[name],
                                  times["plain"], target=1.15, extra={"steps": steps, "trainable": trainable}))
    rows += _step_efficiency(ctx)
    return rows


def _step_efficiency(ctx: Context) -> list[Row]:
    """The plain step's achieved FLOP/s against the GEMM peak, fp32 and bf16 autocast."""
    from ..edit.losses import NPOConfig

    spec = SMALL if ctx.quick else REAL
    m = ctx.model(spec)
    task = m.task()
    steps = 2
    cfg = NPOConfig(steps=steps, batch_size=8)  # a bf16 SmolLM2 step without native bf16: ~10 s here
    flops = _step_flops(m, task, cfg)
    dev = "cuda" if ctx.device.startswith("cuda") else "cpu"

    def run(autocast: bool):
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=autocast):
            plain_loop(m, task, cfg, steps)

    def run_zero(autocast: bool):
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=autocast):
            plain_loop(m, task, cfg, 0)
    times = interleaved({"fp32": ctx.timed(lambda: run(False)), "bf16": ctx.timed(lambda: run(True)),
                         "fp32-0": ctx.timed(lambda: run_zero(False)), "bf16-0": ctx.timed(lambda: run_zero(True))},
                        ctx.repeats, warmup=1 if ctx.quick else 0)
    rows = []
    for name in ("fp32", "bf16"):
        per_step = [(t - t0) / steps for t, t0 in zip(times[name], times[f"{name}-0"])]
        fractions = [flops / max(s, 1e-9) / 1e9 / _peak(ctx, name) for s in per_step]
        row = value_row("step", f"plain step, {name}{' autocast' if name == 'bf16' else ''} | {short(spec)}",
                        "fraction of peak", fractions, reference=f"{name} GEMM peak",
                        target=0.5 if name == "bf16" else None,
                        extra={"step": f"{1000 * sorted(per_step)[len(per_step) // 2]:.0f} ms",
                               "GFLOP/step": round(flops / 1e9, 2),
                               "peak GFLOP/s": round(_peak(ctx, name), 1)})
        rows.append(row)
    return rows


# --- scaling ------------------------------------------------------------------------------

def _cell(loaded, facts: int) -> None:
    """One study cell, uncached: circuits localisation, mean ablation of the top 5% of
    nodes, the behaviour and TOFU probes (edited, original, oracle) over `facts` facts."""
    from probes import probe

    from ..edit import apply_operator
    from ..localise import localise

    task = loaded.task()
    loc = localise(loaded, task, "circuits", {"max_facts": facts}, progress=False)
    edit = apply_operator(loaded, loc, task, "ablate", {"mode": "mean", "fraction": 0.05}, progress=False)
    probe(loaded, task, edit=edit, config={"families": ["behaviour", "tofu"], "max_facts": facts},
          progress=False, use_cache=False)


def scaling(ctx: Context) -> list[Row]:
    import time

    rows = []
    spec = SMALL if ctx.quick else DEFAULT
    m = ctx.model(spec)
    base = 5 if ctx.quick else 25
    sizes = [base, 2 * base] if ctx.quick else [base, 2 * base, 4 * base]
    _cell(m, base)  # warm-up: lazy set-up is not the cell's cost
    times = interleaved({n: (lambda n=n: _cell(m, n)) for n in sizes}, 1 if ctx.quick else ctx.repeats, warmup=0)
    med = [statistics.median(times[n]) for n in sizes]
    per_repeat = [fit_exponent(sizes, [times[n][r] for n in sizes]) for r in range(len(times[sizes[0]]))]
    rows.append(Row("scaling", f"study cell time vs facts | {short(spec)}", f"facts {sizes}", "exponent",
                    statistics.median(per_repeat), min(per_repeat), max(per_repeat), repeats=len(per_repeat),
                    extra={"seconds": " / ".join(f"{t:.1f}" for t in med)}))
    if ctx.quick:
        return rows
    models, secs = [], []
    for s in (DEFAULT, REAL):  # the default testbed's cell code paths are warm by now
        lm = ctx.model(s)
        t0 = time.perf_counter()
        _cell(lm, base)  # once: a SmolLM2 cell takes minutes on a CPU
        ctx.sync()
        models.append(lm.n_params)
        secs.append(time.perf_counter() - t0)
    rows.append(Row("scaling", f"study cell time vs model size ({base} facts)",
                    "testbed:dense, smollm2-135m-instruct", "exponent", fit_exponent(models, secs),
                    fit_exponent(models, secs), fit_exponent(models, secs), repeats=1,
                    extra={"params": " / ".join(f"{p / 1e6:.2f}M" for p in models),
                           "seconds": " / ".join(f"{t:.1f}" for t in secs),
                           "gemma-3-270m": "not loadable yet (no Gemma-3 loader)"}))
    return rows
