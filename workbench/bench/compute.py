"""Forward-pass benchmarks: the machine's GEMM peak, the lenses' overhead, activation and
attribution patching against TransformerLens' utilities."""
from __future__ import annotations

import contextlib
import statistics
from typing import Callable

import torch

from .context import DEFAULT, REAL, Context, short
from .core import Row, interleaved, ratio_row, value_row

# --- the machine's limit ------------------------------------------------------------------

def gemm_peak(ctx: Context) -> list[Row]:
    """Per dtype and size, the faster of `torch.mm` and `F.linear` (what `nn.Linear` runs; on
    CPUs without native bf16 the two take different kernels, ~10x apart)."""
    rows = []
    sizes = [512] if ctx.quick else [1024, 2048]
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        best = 0.0
        for n in sizes:
            a = torch.randn(n, n, device=ctx.device).to(dtype)
            b = torch.randn(n, n, device=ctx.device).to(dtype)
            flops = 2 * n ** 3
            ops = {op: (lambda a=a, b=b, f=f: f(a, b)) for op, f in _kernels(ctx, dtype).items()}
            fns = {}
            for op, fn in ops.items():
                reps = max(1, int(0.05 / max(_once(ctx, fn), 1e-6)))  # ~50 ms a timed call

                def many(fn=fn, reps=reps):
                    for _ in range(reps):
                        fn()
                fns[op] = (ctx.timed(many), reps)
            times = interleaved({op: f for op, (f, _) in fns.items()}, ctx.repeats)
            gflops = {op: [flops * fns[op][1] / t / 1e9 for t in ts] for op, ts in times.items()}
            op = max(gflops, key=lambda k: sorted(gflops[k])[len(gflops[k]) // 2])
            row = value_row("gemm", f"{name} matmul {n}x{n}x{n}", "GFLOP/s", gflops[op], reference="-",
                            extra={"kernel": f"torch.{'nn.functional.' if op == 'linear' else ''}{op}",
                                   "other kernel": next((f"{statistics.median(v):.1f}" for k, v in gflops.items()
                                                         if k != op), "over 4x slower: not timed"),
                                   "threads": torch.get_num_threads()})
            best = max(best, row.ratio)
            rows.append(row)
        ctx.peak[name] = best
    return rows


def _kernels(ctx: Context, dtype) -> dict[str, Callable]:
    """`torch.mm` and `F.linear`, less the one more than 4x slower on a 256-cube (bf16
    `torch.mm` without native bf16 instructions: ~100x slower, minutes a call at 2048)."""
    kernels = {"mm": torch.mm, "linear": torch.nn.functional.linear}
    a = torch.randn(256, 256, device=ctx.device).to(dtype)
    speed = {op: 1 / max(min(_once(ctx, lambda f=f: f(a, a)) for _ in range(3)), 1e-9) for op, f in kernels.items()}
    return {op: f for op, f in kernels.items() if speed[op] * 4 >= max(speed.values())}


def _once(ctx: Context, fn: Callable) -> float:
    import time

    fn()
    ctx.sync()
    t0 = time.perf_counter()
    fn()
    ctx.sync()
    return time.perf_counter() - t0


def _peak(ctx: Context, name: str) -> float:
    if name not in ctx.peak:
        quick, repeats = ctx.quick, ctx.repeats
        ctx.quick, ctx.repeats = True, 1
        try:
            gemm_peak(ctx)
        finally:
            ctx.quick, ctx.repeats = quick, repeats
    return ctx.peak[name]


# --- lens overhead ------------------------------------------------------------------------

def _token_ids(loaded, n: int, length: int) -> torch.Tensor:
    """[n, length] seeded random token ids after BOS: what a lens costs does not depend on the text."""
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, loaded.model.config.vocab_size, (n, length), generator=gen)
    ids[:, 0] = loaded.tokenizer.bos_token_id if loaded.tokenizer.bos_token_id is not None else 0
    return ids


def lens(ctx: Context) -> list[Row]:
    from ..models.lenses import bridge_logits, hf_logits, nnsight_logits

    rows = []
    on_gpu = ctx.device.startswith("cuda")
    for spec in ctx.specs([DEFAULT, REAL]):
        m = ctx.model(spec)
        ids = _token_ids(m, 8 if ctx.quick else 32, 8 if ctx.quick else 24).to(ctx.device)
        ref = hf_logits(m, ids)
        diff = max(float((bridge_logits(m, ids) - ref).abs().max()), float((nnsight_logits(m, ids) - ref).abs().max()))

        def cached():
            with torch.no_grad():
                return m.bridge.run_with_cache(ids)
        times = interleaved({n: ctx.timed(f) for n, f in {
            "hf": lambda: hf_logits(m, ids), "bridge": lambda: bridge_logits(m, ids), "cache": cached,
            "nnsight": lambda: nnsight_logits(m, ids)}.items()}, ctx.repeats)
        for key, case in (("bridge", "TransformerLens bridge"), ("cache", "bridge + activation cache"),
                          ("nnsight", "nnsight trace")):
            rows.append(ratio_row("lens", f"{case} | {short(spec)}", "HF forward", times[key], times["hf"],
                                  target=1.2 if on_gpu else None, target_note="" if on_gpu else "≤ 1.2 on a GPU",
                                  extra={"batch": f"{ids.shape[0]}x{ids.shape[1]}", "max |logit diff|": diff}))
    return rows


# --- patching -----------------------------------------------------------------------------

def _tl_activation_patching(loaded, prompts, groups) -> torch.Tensor:
    """Scores of the same head and MLP-output nodes by `transformer_lens.patching` on the
    bridge: clean activations patched into the corrupted run, metric change against the
    corrupted run, summed over prompts, divided by their number."""
    import transformer_lens.patching as tlp

    from ..localise.circuits import logit_diff
    from ..tasks.prompts import batches

    def every_position(corrupted, index, clean):
        corrupted[...] = clean
        return corrupted
    br = loaded.bridge
    total, count = None, 0
    with _quiet_tl(tlp):
        for batch in batches(prompts, 64, need_corrupt=True):
            def metric(logits, batch=batch):
                return logit_diff(logits, batch).sum()
            with torch.no_grad():
                _, cache = br.run_with_cache(batch.ids)
                base = metric(br(batch.corrupt, return_type="logits"))
                heads = tlp.get_act_patch_attn_head_out_all_pos(br, batch.corrupt, cache, metric)
                mlps = tlp.generic_activation_patch(br, batch.corrupt, cache, metric, every_position, "mlp_out",
                                                    index_axis_names=("layer",))
            per_layer = torch.cat([heads, mlps[:, None]], dim=1) - base  # [layer, heads + 1]
            total = per_layer if total is None else total + per_layer
            count += len(batch.prompts)
    layers = sorted({g.layer for g in groups})
    return (total[layers] / count).flatten().cpu()


@contextlib.contextmanager
def _quiet_tl(module):
    """TransformerLens' patching shows a tqdm bar per call: silenced while we time it."""
    saved = module.tqdm
    module.tqdm = lambda it, **_: it
    try:
        yield
    finally:
        module.tqdm = saved


def _workbench_scores(loaded, prompts, groups, method: str) -> torch.Tensor:
    from ..localise.circuits import CircuitConfig, patching_scores

    s = patching_scores(loaded, prompts, groups, CircuitConfig(method=method), progress=False)
    return torch.cat([s[i] for i in range(len(groups))])


def patching(ctx: Context) -> list[Row]:
    from ..localise.agreement import spearman
    from ..localise.circuits import node_groups
    from ..tasks.prompts import build_prompts

    rows = []
    # the workbench against TransformerLens' utilities: every head and MLP output of every layer
    for spec in ctx.specs([DEFAULT]):
        m = ctx.model(spec)
        prompts = build_prompts(m.tokenizer, m.task(), "forget", max_facts=16 if ctx.quick else 64)
        groups = node_groups(m.model, ("head", "mlp"), range(m.model.config.num_hidden_layers))
        ours, theirs = _workbench_scores(m, prompts, groups, "activation"), _tl_activation_patching(m, prompts, groups)
        diff = float((ours - theirs).abs().max() / theirs.abs().max().clamp(min=1e-12))
        times = interleaved({
            "ours": ctx.timed(lambda: _workbench_scores(m, prompts, groups, "activation")),
            "tl": ctx.timed(lambda: _tl_activation_patching(m, prompts, groups))}, ctx.repeats)
        rows.append(ratio_row("patching", f"activation patching | {short(spec)}",
                              "transformer_lens.patching", times["ours"], times["tl"], target=1.0,
                              extra={"nodes": len(ours), "prompts": len(prompts), "max rel. score diff": diff}))
    # attribution against activation patching (the approximation's speed and faithfulness)
    for spec in ctx.specs([DEFAULT, REAL]):
        m = ctx.model(spec)
        n_facts = 16 if ctx.quick else (4 if spec == REAL else 64)  # SmolLM2: ~2 min an activation run here
        prompts = build_prompts(m.tokenizer, m.task(), "forget", max_facts=n_facts)
        groups = node_groups(m.model, ("head", "mlp"), range(m.model.config.num_hidden_layers))
        scores: dict = {}

        def timed(method):  # each timed run also gives the scores (activation patching is the long one)
            return ctx.timed(lambda: scores.__setitem__(method, _workbench_scores(m, prompts, groups, method)))
        # attribution's first call pays for autograd's set-up: one untimed call; activation's
        # hundreds of forwards per batch need none (and cost minutes on SmolLM2)
        _workbench_scores(m, prompts, groups, "attribution")
        times = interleaved({k: timed(k) for k in ("attribution", "activation")},
                            ctx.repeats if spec != REAL else 1, warmup=0)
        attr, act = scores["attribution"], scores["activation"]
        real = spec == REAL
        rows.append(ratio_row("patching", f"attribution patching | {short(spec)}", "activation patching",
                              times["attribution"], times["activation"], kind="speedup",
                              target=50.0 if real else None,
                              extra={"nodes": len(attr), "prompts": len(prompts)}))
        rho = spearman(attr, act)
        rows.append(Row("patching", f"attribution patching scores | {short(spec)}", "activation patching scores",
                        "spearman", rho, rho, rho, target=0.85 if real else None,
                        extra={"|score| spearman": spearman(attr.abs(), act.abs())}))
    return rows
