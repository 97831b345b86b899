"""One trainer loop for every unlearning loss, with optional parameter masks.

Masks come from a `Localisation` (`loc.mask(model, ...)`) or are `None` (the whole model,
the unmasked baseline). Parameters without a mask entry are frozen (no gradient at all);
in partly masked parameters the gradient is multiplied by the mask before the step and the
masked-out coordinates are restored to θ₀ after it (AdamW's decay and momentum would move
them otherwise). Guards: a non-finite loss stops training and restores the weights that gave
the last finite loss; an optional collapse stop ends training when retain accuracy falls
below a threshold (restoring the weights of the last evaluation that passed).
`retain_similar` draws that share of each retain batch from retain people who share a name
part with a forget person: the hardest retain cases (the testbed's neighbours are such people
held out of training). The model
comes back unchanged: the result holds the trained values of the parameters that could move.
"""
from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field

import torch

from ..errors import WorkbenchInputError
from ..hooks import hook_session
from ..models.arch import resolve
from ..models.scoring import accuracy, score_examples
from ..progress import tqdm
from ..sites import HookSite
from ..tasks.prompts import answer_batches, default_forms
from .losses import LOSSES, FineTuneConfig, Step, anchor_term, seq_nll


@dataclass(frozen=True)
class RouterAnchor:
    """UOE's router anchor: weight · ‖g − onehot(expert)‖² on forget tokens at `layer`."""
    layer: int
    expert: int
    weight: float


@dataclass
class TrainResult:
    weights: dict[str, torch.Tensor]
    history: list[dict] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)
    stopped: str | None = None
    steps_done: int = 0


def _examples(task, split):
    forms = default_forms(task)
    return [task.render(f, n) for f in task.facts(split) for n in forms if f.relation in task.forms[n].templates]


def _batch(tok, exs):
    return next(answer_batches(tok, exs, len(exs)))


def _accuracy(loaded, exs) -> float:
    return accuracy(score_examples(loaded.model, loaded.tokenizer, exs, 128))


def unlearn(loaded, task, cfg: FineTuneConfig, masks: dict[str, torch.Tensor] | None = None,
            progress: bool = True, anchor: RouterAnchor | None = None) -> TrainResult:
    """Train with the loss `cfg.kind` under `cfg` (a loss's config); `anchor` adds the UOE
    router anchor on forget tokens."""
    model, tok = loaded.model, loaded.tokenizer
    loss = LOSSES.get(cfg.kind)()
    rng = random.Random(cfg.seed)
    torch.manual_seed(cfg.seed)
    forget, retain = _examples(task, "forget"), _examples(task, "retain")  # retain: batches and evaluation
    parts_of = {w for ex in forget for w in ex.fact.subject.split()}
    similar = [ex for ex in retain if parts_of & set(ex.fact.subject.split())]
    if not forget:
        raise WorkbenchInputError(f"task {task.name!r} has no forget examples to train on")
    params = dict(model.named_parameters())
    if masks is not None:
        unknown = sorted(set(masks) - set(params))
        if unknown:
            raise WorkbenchInputError(f"mask for unknown parameter {unknown[0]!r}")
        masks = {n: m for n, m in masks.items() if bool(m.any())}
        if not masks:
            raise WorkbenchInputError("the mask selects no parameter")
    trainable = {n: p for n, p in params.items() if masks is None or n in masks}
    partial = {n: m for n, m in (masks or {}).items() if not bool(m.all())}
    theta0 = {n: trainable[n].detach().clone() for n in partial}
    originals = {n: p.detach().clone() for n, p in trainable.items()}
    flags = {n: p.requires_grad for n, p in params.items()}

    needs_ref_model = (loss.uses_retain() and cfg.retain == "kl") or loss.uses_hidden
    ref_model = copy.deepcopy(model).eval() if needs_ref_model else None
    ref_nll = {}
    if loss.needs_ref:
        with torch.no_grad():
            model.eval()
            for i in range(0, len(forget), 64):
                chunk = forget[i : i + 64]
                ids, mask, labels = _batch(tok, chunk)
                nll = seq_nll(model(input_ids=ids, attention_mask=mask).logits, labels, cfg.reduction)
                ref_nll.update({id(ex): v for ex, v in zip(chunk, nll)})
    hidden_at = None
    if loss.uses_hidden:
        layer = cfg.layer if cfg.layer is not None else model.config.num_hidden_layers // 2
        hidden_at = resolve(HookSite(layer, "hook_resid_post"), model)

    router_at = None
    if anchor is not None and anchor.weight:
        router_at = resolve(HookSite(anchor.layer, "mlp.gate.hook_out"), model)
    result = TrainResult(weights={})
    last_good = {n: p.detach().clone() for n, p in trainable.items()}
    passed_eval = dict(last_good)
    for n, p in params.items():
        p.requires_grad_(n in trainable)
    opt = torch.optim.AdamW(list(trainable.values()), lr=cfg.lr, weight_decay=cfg.weight_decay)
    order: list = []
    model.train()
    bar = tqdm(range(cfg.steps), desc=f"unlearning ({cfg.kind})", disable=not progress)
    try:
        for step_i in bar:
            if not order:
                order = list(range(len(forget)))
                rng.shuffle(order)
            idx, order = order[: cfg.batch_size], order[cfg.batch_size :]
            f_exs = [forget[i] for i in idx]
            r_exs = []
            if retain and loss.uses_retain():
                n_sim = min(len(similar), round(cfg.retain_similar * cfg.batch_size))
                r_exs = rng.sample(similar, n_sim) + rng.sample(retain, min(cfg.batch_size - n_sim, len(retain)))
            f_ids, f_mask, f_labels = _batch(tok, f_exs)
            store: dict = {}
            with hook_session(model) as hs:
                if hidden_at is not None:
                    hs.read(hidden_at.module, hidden_at.io, store, "h", detach=False)
                if router_at is not None:
                    hs.read(router_at.module, router_at.io, store, "router", detach=False)
                f_logits = model(input_ids=f_ids, attention_mask=f_mask).logits
                f_hidden = store.get("h")
                step = Step(f_logits, f_labels, None, None, forget_mask=f_mask, forget_hidden=f_hidden)
                if router_at is not None:
                    step.router_probs = torch.softmax(store["router"].float(), -1).reshape(*f_ids.shape, -1)
                if loss.needs_ref:
                    step.ref_forget_nll = torch.stack([ref_nll[id(ex)] for ex in f_exs])
                if r_exs:
                    r_ids, r_mask, r_labels = _batch(tok, r_exs)
                    step.retain_logits = model(input_ids=r_ids, attention_mask=r_mask).logits
                    step.retain_labels, step.retain_mask = r_labels, r_mask
                    step.retain_hidden = store.get("h")
            if ref_model is not None and r_exs:
                with torch.no_grad(), hook_session(ref_model) as hs:
                    if hidden_at is not None:
                        hs.read(hidden_at.module, hidden_at.io, store, "ref")
                    step.ref_retain_logits = ref_model(input_ids=r_ids, attention_mask=r_mask).logits
                    step.ref_retain_hidden = store.get("ref")
            parts = loss(step, cfg)
            if router_at is not None:
                parts["anchor"] = anchor.weight * anchor_term(step.router_probs, anchor.expert, f_mask)
            total = cfg.forget_weight * parts["forget"]
            if "retain" in parts:
                total = total + cfg.retain_weight * parts["retain"]
            total = total + parts.get("anchor", 0.0)
            if not torch.isfinite(total):
                with torch.no_grad():
                    for n, p in trainable.items():
                        p.copy_(last_good[n])
                result.stopped = f"non-finite loss at step {step_i}: kept the weights of step {max(0, step_i - 1)}"
                break
            with torch.no_grad():
                for n, p in trainable.items():
                    last_good[n].copy_(p)
            opt.zero_grad(set_to_none=True)
            total.backward()
            for n, m in partial.items():
                if trainable[n].grad is not None:
                    trainable[n].grad.mul_(m)
            if cfg.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(list(trainable.values()), cfg.max_grad_norm)
            opt.step()
            with torch.no_grad():
                for n, m in partial.items():
                    trainable[n].copy_(torch.where(m, trainable[n], theta0[n]))
            row = {"step": step_i + 1, "loss": float(total.detach()), **{k: float(v.detach()) for k, v in parts.items()}}
            result.history.append(row)
            result.steps_done = step_i + 1
            bar.set_postfix({k: f"{v:.3f}" for k, v in row.items() if k != "step"})
            if cfg.eval_every and (step_i + 1) % cfg.eval_every == 0:
                model.eval()
                ev = {"step": step_i + 1, "forget": _accuracy(loaded, forget[: cfg.eval_facts]),
                      "retain": _accuracy(loaded, retain[: cfg.eval_facts])}
                model.train()
                result.evals.append(ev)
                if cfg.collapse_retain is not None and ev["retain"] < cfg.collapse_retain:
                    with torch.no_grad():
                        for n, p in trainable.items():
                            p.copy_(passed_eval[n])
                    result.stopped = (f"retain accuracy {ev['retain']:.3f} < {cfg.collapse_retain} at step "
                                      f"{step_i + 1}: kept the weights of the last evaluation that passed")
                    break
                passed_eval = {n: p.detach().clone() for n, p in trainable.items()}
    finally:
        bar.close()
        result.weights = {n: p.detach().clone() for n, p in trainable.items()}
        with torch.no_grad():
            for n, p in trainable.items():
                p.copy_(originals[n])
        for n, p in params.items():
            p.requires_grad_(flags[n])
        model.eval()
    return result
