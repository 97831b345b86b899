"""Relearning attacks (Guo et al. 2024; Łucki et al. 2024): fine-tune on half of the forget
facts (or on unrelated retain facts only) for k steps and measure accuracy on the other half
of the forget facts after every step. The same protocol on the oracle gives the curve of a
model that never learned the facts; the relearning gap is the area between the two curves.

An edit is attacked as a user would receive it: its baked checkpoint where it exports (a
mean-ablation's zeroed columns and bias can then move), else the hooked model (which the
attack cannot move through its hooks) beside the edit's weights without the hooks
(`relearn.<data>.final_weights_only`); `target = "hooks"` attacks the hooked model instead
(the comparison). The model is trained in place and every parameter is restored
bit-identically afterwards. Intervals: 95% bootstrap over the held-out half's people, the
gap's paired per example with the oracle's (`workbench.stats`).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

import torch

from workbench.errors import WorkbenchInputError
from workbench.models.arch import table_for
from workbench.models.scoring import score_examples
from workbench.models.train import collate
from workbench.registry import check_positive, check_range
from workbench.stats import mean_interval

from .base import NO_ORACLE, Context, ProbeFamily, register
from .result import Metric


@dataclass(frozen=True)
class RelearnConfig:
    method: Literal["full", "lora"] = "full"
    steps: int = 20
    lr: float | None = None  # None: full 3e-4 / LoRA 1e-3 below 10M parameters, else 2e-5 / 2e-4
    batch: int = 16
    lora_r: int = 16
    lora_alpha: int = 32
    data: tuple[str, ...] = ("forget", "retain")  # fine-tune on the other forget half and/or retain facts
    target: Literal["baked", "hooks"] = "baked"  # what an edit's attack trains (module docstring)

    def check(self):
        bad = [d for d in self.data if d not in ("forget", "retain")]
        if bad:
            raise WorkbenchInputError(f"option data={bad[0]!r}: expected forget and/or retain")
        if self.target not in ("baked", "hooks"):
            raise WorkbenchInputError(f"option target={self.target!r}: expected baked or hooks")
        if self.steps < 0:
            raise WorkbenchInputError(f"option steps={self.steps}: expected an integer >= 0")
        check_positive(self, "batch", "lora_r", "lora_alpha")
        check_range(self, "lr", 0, low_open=True)


def halves(ctx: Context):
    facts = list(ctx.task.facts("forget"))
    order = list(range(len(facts)))
    random.Random(f"{ctx.config.seed}|relearn").shuffle(order)
    half = len(facts) // 2
    return [facts[i] for i in sorted(order[:half])], [facts[i] for i in sorted(order[half:])]


def _train_texts(task, facts) -> list[str]:
    out = []
    for f in facts:
        for form in task.forms.values():
            if f.relation not in form.templates or form.kind == "mcq":
                continue
            trained = task.trained(f, form) if task.trained is not None else form.kind == "declarative"
            if trained:
                out.append(task.render(f, form).text)
    return out


def eval_examples(task, facts) -> list:
    """The attack's evaluation examples: every non-multiple-choice form of `facts`."""
    return task.render_all(facts, mcq=False)


def _eval(model, tok, exs) -> list[int]:
    """1/0 per example: the answer is the exact completion."""
    return [int(s.correct) for s in score_examples(model, tok, exs)] if exs else []


def _lr(cfg: RelearnConfig, model) -> float:
    if cfg.lr is not None:
        return cfg.lr
    small = sum(p.numel() for p in model.parameters()) < 10_000_000
    if cfg.method == "lora":
        return 2e-4 if not small else 1e-3
    return 3e-4 if small else 2e-5


def _mean(xs: list[int]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def attack(ctx: Context, cfg: RelearnConfig, model, tok, train_facts, eval_facts) -> dict:
    """`curve`: [[step, accuracy on eval_facts], ...] from step 0 (before training) to k;
    `correct`: the 1/0 of every evaluation example (`eval_examples` order) at each step."""
    texts = _train_texts(ctx.task, train_facts)
    exs = eval_examples(ctx.task, eval_facts)
    seqs = [tok(t)["input_ids"] + ([tok.eos_token_id] if tok.eos_token_id is not None else []) for t in texts]
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    saved = {n: p.detach().clone() for n, p in model.state_dict().items()}
    grads = {n: p.requires_grad for n, p in model.named_parameters()}
    was = model.training
    correct = [_eval(model, tok, exs)]
    torch.manual_seed(ctx.config.seed)
    rng = random.Random(f"{ctx.config.seed}|relearn-batches")
    lora = None
    try:
        if cfg.method == "lora":
            from peft import LoraConfig, get_peft_model

            lora = get_peft_model(model, LoraConfig(
                r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0,
                target_modules=lora_targets(model)))
            params = [p for p in lora.parameters() if p.requires_grad]
        else:
            params = [p for p in model.parameters()]
            for p in params:
                p.requires_grad_(True)
        opt = torch.optim.AdamW(params, lr=_lr(cfg, model), weight_decay=0.0)
        net = lora if lora is not None else model
        for step in range(1, cfg.steps + 1):
            if seqs:
                net.train()
                idx = rng.sample(range(len(seqs)), min(cfg.batch, len(seqs)))
                ids, labels, mask = collate(seqs, idx, pad)
                dev = next(model.parameters()).device
                loss = net(input_ids=ids.to(dev), attention_mask=mask.to(dev), labels=labels.to(dev)).loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                net.eval()
            correct.append(_eval(model, tok, exs))
    finally:
        if lora is not None:
            lora.unload()
        with torch.no_grad():
            for n, p in model.state_dict().items():
                if n in saved:
                    p.copy_(saved[n])
        for n, p in model.named_parameters():
            p.requires_grad_(grads.get(n, p.requires_grad))
        model.zero_grad(set_to_none=True)
        model.train(was)
    return {"curve": [[i, _mean(c)] for i, c in enumerate(correct)], "correct": correct}


def lora_targets(model) -> list[str]:
    """Linear layers LoRA may wrap (the architecture table's `lora_modules`): not those an edit
    hooks (a LoRA branch would read the un-ablated input and route around the edit)."""
    names = table_for(model).lora_modules
    out = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n.split(".")[-1] in names
           and not (m._forward_pre_hooks or m._forward_hooks)]
    if not out:
        raise WorkbenchInputError("relearning with LoRA: no linear layer left to adapt (every one carries an "
                                  "edit hook)")
    return out


@register
class Relearn(ProbeFamily):
    name = "relearn"
    summary = ("relearning attacks: fine-tune on half the forget set (or on retain data); curve and gap "
               "to the oracle")
    Config = RelearnConfig
    version = 2  # 2: per-example results and intervals; an edit attacked as its baked checkpoint
    trains_model = True

    def attacks_baked(self) -> bool:
        return self.config.target == "baked"

    def measure(self, ctx: Context, model, tok) -> dict:
        train, held = halves(ctx)
        out = {"n_train": len(train), "n_eval": len(held),
               "people": [ex.fact.subject for ex in eval_examples(ctx.task, held)]}
        for data in self.config.data:
            source = train if data == "forget" else list(ctx.task.facts("retain"))[: max(1, len(train))]
            out[data] = attack(ctx, self.config, model, tok, source, held)
        return out

    def compare(self, ctx: Context, raws: dict, missing: dict):
        cfg = self.config
        metrics = []
        targets = {"baked": "the edit's baked checkpoint", "weights": "the edited weights",
                   "hooks": "the hooked model (its hooks cannot be baked: the attack cannot move them)",
                   "hooks (requested)": "the hooked model (target = hooks)"}
        target = raws.get("edited", {}).get("target")
        for data in cfg.data:
            label = "half of the forget facts" if data == "forget" else "unrelated retain facts"
            final = Metric(f"relearn.{data}.final", "relearn", "reference",
                           curves={r: x[data]["curve"] for r, x in raws.items()},
                           description=f"accuracy on the held-out forget half after fine-tuning on {label} "
                                       f"for {cfg.steps} steps" + (f"; the edit attacked: {targets[target]}"
                                                                   if target else ""))
            for r, x in raws.items():
                final.values[r], iv = _final(x, data)
                _set(final, r, iv)
            metrics.append(final)
            g = Metric(f"relearn.{data}.gap", "relearn", "lower",
                       description="area between this model's relearning curve and the oracle's, per step")
            if "oracle" in raws:
                for r, x in raws.items():
                    g.values[r], iv = _gap(x, raws["oracle"], data)
                    _set(g, r, iv)
            else:
                g.notes = {r: missing.get("oracle", NO_ORACLE) for r in raws}
            metrics.append(g)
            if target == "hooks":
                w = raws["edited"]["weights_only"]  # a whole measurement: its own people, same examples
                wm = Metric(f"relearn.{data}.final_weights_only", "relearn", "reference",
                            curves={"edited": w[data]["curve"]},
                            description=f"as relearn.{data}.final, attacking the edit's weights without its "
                                        f"hooks (what an attacker holding only the weights starts from)")
                wm.values["edited"], iv = _final(w, data)
                _set(wm, "edited", iv)
                metrics.append(wm)
        return metrics, {r: {k: v for k, v in x.items()} for r, x in raws.items()}


def _set(metric: Metric, role: str, interval: tuple[float, float] | None) -> None:
    if interval is not None:
        metric.intervals[role] = list(interval)


def _final(raw: dict, data: str) -> tuple[float, tuple[float, float] | None]:
    """The final accuracy of one attack and its 95% interval over the evaluated people."""
    last = raw[data]["correct"][-1]
    if not last:
        return float("nan"), None
    return raw[data]["curve"][-1][1], mean_interval(last, raw["people"])


def _gap(raw: dict, oracle: dict, data: str) -> tuple[float, tuple[float, float] | None]:
    """`gap` of the two curves and its interval: the same examples on both sides, so each
    example's own area is paired with the oracle's and people are resampled."""
    value = gap(raw[data]["curve"], oracle[data]["curve"])
    mine, ref = raw[data]["correct"], oracle[data]["correct"]
    if raw["people"] != oracle["people"] or len(mine) != len(ref) or not mine[0]:
        return value, None
    per_example = [gap([[s, a[i]] for s, a in enumerate(mine)], [[s, b[i]] for s, b in enumerate(ref)])
                   for i in range(len(mine[0]))]
    return value, mean_interval(per_example, raw["people"])


def gap(curve: list, reference: list) -> float:
    """Area between two curves over the attack steps, per step (accuracy units)."""
    ys = [a[1] - b[1] for a, b in zip(curve, reference)]
    if len(ys) < 2:
        return ys[0] if ys else float("nan")
    return sum((ys[i] + ys[i + 1]) / 2 for i in range(len(ys) - 1)) / (len(ys) - 1)


