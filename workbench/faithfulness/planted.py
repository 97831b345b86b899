"""Planted signals: models where one forget person's facts live in components chosen in advance,
so that a localiser can be checked against a known answer before its result on real data means
anything (a localiser that cannot find a planted signal has no finding to report).

- `plant_neurons(oracle, task, person, layer, n)`: start from the oracle twin, which never saw
  the forget people, and teach it one forget person's facts by training **only** `n` MLP neurons
  of one layer (their gate and up rows and their value vector, the down-projection column),
  with the retain facts as a regulariser and an L1 penalty on the neurons' activations on
  retain text (so they fire for that person only); each planted row and column keeps its
  original norm (so a weight-magnitude score cannot spot them). Everything else is frozen, so the person's
  facts can live nowhere but in those neurons: the planted sites are the answer every neuron
  and weight localiser should find.
- `plant_expert(moe, task, person, layer, expert)`: a router row of an MoE that sends the
  person's tokens to one expert (its row moved along the difference of the router's mean input
  on that person's text and on retain text): the answer of a routing localiser (UOE).

`person_task(task, person)` is the forget task of one person (the other forget people left out:
the oracle never saw them, so they carry no signal). `shuffled` nulls: the same planted model
with a retain person as the forget set, where the planted sites must not stand out.
"""
from __future__ import annotations

import copy
import dataclasses
import random
from dataclasses import dataclass, replace

import torch

from ..errors import WorkbenchInputError
from ..models.arch import resolve
from ..models.readouts import accuracies
from ..models.scoring import answer_ce
from ..sites import ExpertSite, HookSite, NeuronSite, Site
from ..tasks.prompts import answer_batches, split_examples
from ..tasks.task import ForgetTask


@dataclass
class Planted:
    """A model with a planted signal: the model (a copy), the task whose forget split the signal
    carries, the planted sites, and the forget / retain accuracy before and after planting."""
    loaded: object
    task: ForgetTask
    sites: tuple[Site, ...]
    before: dict
    after: dict


def person_task(task: ForgetTask, person: str, split: str = "forget") -> ForgetTask:
    """The task whose forget split is every fact of `person` (a person of `split`); the other
    forget people are left out, and a retain person taken as the forget set leaves the retain
    split (the shuffled null)."""
    facts = [f for f in task.facts(split) if f.subject == person]
    if not facts:
        people = sorted({f.subject for f in task.facts(split)})
        raise WorkbenchInputError(f"person {person!r}: not in the {split} split; expected one of "
                                  f"{', '.join(people[:5])}{', ...' if len(people) > 5 else ''}")
    retain = [f for f in task.facts("retain") if f.subject != person]
    splits = {**task.splits, "forget": facts, "retain": retain}
    return replace(task, name=f"{task.name}[{person}]", splits=splits)


def _copy(loaded, suffix: str):
    return dataclasses.replace(loaded, spec=f"{loaded.spec}#{suffix}", model=copy.deepcopy(loaded.model))


def _masks(model, sites) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for site in sites:
        for ps in resolve(site, model).params:
            m = out.setdefault(ps.name, torch.zeros_like(model.get_parameter(ps.name), dtype=torch.bool))
            m[ps.index] = True
    return out


def plant_neurons(oracle, task: ForgetTask, person: str, layer: int, n: int = 8, steps: int = 400,
                  lr: float = 3e-3, retain_weight: float = 1.0, sparsity: float = 1.0, target: float = 0.9,
                  seed: int = 0) -> Planted:
    """Teach `oracle` (a copy) the facts of forget person `person` through `n` random neurons
    of MLP layer `layer` only (module docstring): loss = answer CE on the person's facts (the
    training forms) + `retain_weight` x answer CE on a retain batch + `sparsity` x the mean
    |activation| of the planted neurons on that retain batch. Stops once the person's facts
    reach `target` accuracy in the training forms, or after `steps` steps."""
    model = oracle.model
    n_layers, d_mlp = model.config.num_hidden_layers, model.config.intermediate_size
    if not 0 <= layer < n_layers:
        raise WorkbenchInputError(f"layer {layer}: out of range (the model has {n_layers})")
    ptask = person_task(task, person)
    planted = _copy(oracle, f"planted-{person}-L{layer}")
    model = planted.model
    rng = random.Random(seed)
    sites = tuple(NeuronSite(layer, j) for j in sorted(rng.sample(range(d_mlp), n)))
    masks = _masks(model, sites)
    forget = split_examples(ptask, "forget")
    retain = split_examples(ptask, "retain", max_facts=200, seed=seed)
    before = accuracies(planted, ptask, max_facts=200)
    params = {name: model.get_parameter(name) for name in masks}
    slices = [ps for site in sites for ps in resolve(site, model).params]
    norms = [float(model.get_parameter(ps.name)[ps.index].detach().norm()) for ps in slices]  # kept: no conspicuous norm
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    for name, p in model.named_parameters():
        p.requires_grad_(name in params)
    opt = torch.optim.Adam(params.values(), lr=lr)
    tok = planted.tokenizer
    was_training = model.training
    model.train()
    gen = random.Random(seed)
    cols = [s.index for s in sites]
    down = model.get_submodule(resolve(sites[0], model).params[0].name.rsplit(".", 1)[0])  # reads the activations
    seen: list[torch.Tensor] = []
    handle = down.register_forward_pre_hook(lambda m, args: seen.append(args[0][..., cols]))
    try:
        for step in range(steps):
            batch_r = gen.sample(retain, min(len(retain), 32))
            loss = sum(answer_ce(model, *b) for b in answer_batches(tok, forget, 64))
            seen.clear()
            for ids, mask, labels in answer_batches(tok, batch_r, 64):
                loss = loss + retain_weight * answer_ce(model, ids, mask, labels)
                act = seen[-1].abs().mean(-1)  # [batch, positions]
                loss = loss + sparsity * (act * mask).sum() / mask.sum()
            opt.zero_grad()
            loss.backward()
            for name, p in params.items():
                p.grad.mul_(masks[name])
            opt.step()
            with torch.no_grad():  # back onto the original norms: the signal is in directions, not sizes
                for ps, norm in zip(slices, norms):
                    w = model.get_parameter(ps.name)
                    w[ps.index] *= norm / w[ps.index].norm().clamp(min=1e-12)
            if step % 25 == 24:
                model.eval()
                done = accuracies(planted, ptask, examples={"forget": forget})["forget"] >= target
                model.train()
                if done:
                    break
    finally:
        handle.remove()
        model.train(was_training)
        for name, p in model.named_parameters():
            p.requires_grad_(flags[name])
    after = accuracies(planted, ptask, max_facts=200)
    return Planted(planted, ptask, sites, before, after)


@torch.no_grad()
def plant_expert(moe, task: ForgetTask, person: str, layer: int, expert: int, scale: float = 8.0) -> Planted:
    """A copy of `moe` whose router at `layer` sends `person`'s tokens to `expert`: the router
    row of `expert` moves by `scale` along the unit difference of the router's mean input on
    that person's text and on retain text (module docstring)."""
    ptask = person_task(task, person)
    planted = _copy(moe, f"planted-{person}-L{layer}E{expert}")
    model = planted.model
    module = model.get_submodule(resolve(HookSite(layer, "mlp.gate.hook_out"), model).module)
    weight = module.weight
    mean = {}
    for split in ("forget", "retain"):
        seen: list[torch.Tensor] = []
        handle = module.register_forward_hook(lambda m, args, out: seen.append(args[0].reshape(-1, args[0].shape[-1])))
        try:
            for ids, mask, _ in answer_batches(planted.tokenizer, split_examples(ptask, split, max_facts=200), 64):
                start = len(seen)
                model(input_ids=ids, attention_mask=mask)
                keep = mask.bool().reshape(-1)
                seen[start:] = [t[keep] for t in seen[start:]]
        finally:
            handle.remove()
        mean[split] = torch.cat(seen).float().mean(0)
    direction = mean["forget"] - mean["retain"]
    before = accuracies(planted, ptask, max_facts=200)
    weight[expert] += (scale * direction / direction.norm()).to(weight.dtype)
    after = accuracies(planted, ptask, max_facts=200)
    return Planted(planted, ptask, (ExpertSite(layer, expert),), before, after)
