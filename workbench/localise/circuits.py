"""Circuits (Guo et al. 2024, Mechanistic Unlearning): activation and attribution patching.

Metric M = logit(answer) - mean logit(wrong options) at the last prompt position. Clean run:
the forget prompt. Corrupt run: the subject replaced by another subject of the same token
length (`corruption=subject`) or Gaussian noise of 3·σ_emb added to the subject embeddings
(`corruption=noise`, causal tracing).

- activation patching: score(node) = M(corrupt, node restored to clean) - M(corrupt)
- attribution patching (one forward + one backward; corrupt-side gradient):
  score(node) ≈ Σ_{batch, pos, dim} (a_clean - a_corrupt) · ∂M/∂a |_corrupt

Nodes: attention heads (input of the output projection, = hook_z), MLP outputs
(`hook_mlp_out`), MLP neurons (`mlp.hook_post`). Scores are means over prompts.

Modes:
- OCT (output tracing): every node, ranked by |score|.
- FLU (fact lookup): per-layer linear probes on `hook_resid_post` at the last subject token
  (trained on retain facts, tested on forget facts) find the first layer where the attribute
  is decodable; only MLP nodes in layers up to there are kept, patched at the subject
  positions only. If no layer beats twice chance, every layer but the last is used (noted).

`contrast` (an addition for fact-level unlearning, 0 = the paper): subtract that multiple
of the node's |score| on retain prompts, so nodes every fact uses rank below fact-specific ones.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch

from ..errors import WorkbenchInputError
from ..registry import check_positive, check_range
from ..hooks import hook_session
from ..models.arch import resolve, table_for
from ..models.linear_probe import probe_accuracy
from ..models.scoring import keep_last
from ..progress import tqdm
from ..sites import HeadSite, HookSite, NeuronSite, Site, SiteKind
from ..tasks.prompts import Batch, batches, build_prompts
from .base import Localiser, check_layers, register
from .localisation import Localisation

NODE_KINDS = ("head", "mlp", "neuron")


@dataclass(frozen=True)
class CircuitConfig:
    mode: Literal["oct", "flu"] = "oct"
    method: Literal["attribution", "activation"] = "attribution"
    nodes: tuple[str, ...] | None = None  # default: oct head,mlp; flu neuron
    corruption: Literal["subject", "noise"] = "subject"
    noise_scale: float = 3.0
    contrast: float = 0.0
    max_facts: int | None = 200
    layers: tuple[int, ...] | None = None
    probe_threshold: float = 0.9  # FLU: first layer reaching this fraction of the best probe accuracy
    batch_size: int = 64
    seed: int = 0

    def check(self):
        bad = [n for n in (self.nodes or ()) if n not in NODE_KINDS]
        if bad:
            raise WorkbenchInputError(f"option nodes={bad[0]!r}: expected some of {', '.join(NODE_KINDS)}")
        check_range(self, "noise_scale", 0)
        check_range(self, "contrast", 0)
        check_range(self, "probe_threshold", 0, 1, low_open=True)
        check_positive(self, "batch_size", "max_facts")

    @property
    def node_kinds(self) -> tuple[str, ...]:
        return self.nodes or (("head", "mlp") if self.mode == "oct" else ("neuron",))


@dataclass(frozen=True)
class NodeGroup:
    """All nodes of one kind in one layer, read at one activation point."""
    kind: str
    layer: int
    module: str
    io: str
    sites: tuple[Site, ...]
    width: int  # activation columns per node (d_model for mlp output: one node)

    def per_node(self, x: torch.Tensor) -> torch.Tensor:
        """[..., n_nodes * width] -> [..., n_nodes] (sum over each node's columns)."""
        return x.reshape(*x.shape[:-1], len(self.sites), self.width).sum(-1)


def node_groups(model, kinds, layers) -> list[NodeGroup]:
    table = table_for(model)
    sizes = table.config_sizes(model.config)
    groups = []
    for layer in layers:
        for kind in kinds:
            if kind == "head":
                sites = tuple(HeadSite(layer, h) for h in range(sizes["n_heads"]))
                width = sizes["head_dim"]
            elif kind == "neuron":
                if "neuron" not in table.units:
                    raise WorkbenchInputError(f"nodes=neuron: {table.name} models have no dense MLP neurons; "
                                     f"use nodes=head,mlp")
                sites = tuple(NeuronSite(layer, j) for j in range(sizes["d_mlp"]))
                width = 1
            else:
                sites = (HookSite(layer, "hook_mlp_out"),)
                width = sizes["d_model"]
            r = resolve(sites[0], model)
            groups.append(NodeGroup(kind, layer, r.module, r.io, sites, width))
    return groups


def logit_diff(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """M = logit(answer) - mean logit(wrong options) at the last position, per sequence."""
    last = logits[:, -1, :].float()
    right = last.gather(1, batch.answer[:, None]).squeeze(1)
    valid = batch.wrong >= 0
    wrong = last.gather(1, batch.wrong.clamp(min=0)) * valid
    return right - wrong.sum(1) / valid.sum(1)


def _corrupt_embeddings(model, batch: Batch, scale: float, seed: int, copies: int = 1):
    """A patch function adding N(0, (scale·σ_emb)²) to the subject embeddings (the same noise
    for each of `copies` stacked copies of the batch)."""
    emb = model.get_input_embeddings().weight
    sigma = float(emb.detach().std()) * scale
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn((*batch.ids.shape, emb.shape[1]), generator=gen) * sigma
    noise = (noise * batch.subject_mask[..., None]).repeat(copies, 1, 1)
    return lambda x: x + noise.to(x.dtype)


def _run(model, ids, session_setup) -> torch.Tensor:
    with hook_session(model) as hs:
        session_setup(hs)
        return model(input_ids=ids).logits


def _corrupt_input(model, batch: Batch, config: CircuitConfig, hs, seed: int, copies: int = 1) -> torch.Tensor:
    """Adds the corruption to a hook session; returns the ids to feed (`copies` copies of the
    batch stacked, each corrupted alike)."""
    if config.corruption == "noise":
        hs.patch(resolve(HookSite(None, "hook_embed"), model).module, "output",
                 _corrupt_embeddings(model, batch, config.noise_scale, seed, copies))
        return batch.ids.repeat(copies, 1)
    return batch.corrupt.repeat(copies, 1)


def _restore_nodes(clean: torch.Tensor, pos: torch.Tensor, nodes: range, width: int):
    """A patch function for `len(nodes)` stacked copies of a batch: copy r gets the clean
    activation back in the columns of node `nodes[r]`, at the positions `pos` ([b, n, 1])."""
    cols = torch.zeros(len(nodes), clean.shape[-1], dtype=torch.bool)
    for r, j in enumerate(nodes):
        cols[r, j * width : (j + 1) * width] = True
    keep = cols[:, None, None, :] & pos.bool()[None]  # [copies, b, n, d]

    def restore(x):
        x = x.reshape(len(nodes), -1, *x.shape[1:])
        return torch.where(keep, clean[None].to(x.dtype), x).reshape(-1, *x.shape[2:])
    return restore


def patching_scores(loaded, prompts, groups: list[NodeGroup], config: CircuitConfig,
                    positions: Literal["all", "subject"] = "all", progress: bool = False) -> dict[int, torch.Tensor]:
    """Signed scores per node group (mean over prompts), by the configured method."""
    model = loaded.model
    need_corrupt = config.corruption == "subject"
    todo = list(batches(prompts, config.batch_size, need_corrupt=need_corrupt))
    if not todo:
        raise WorkbenchInputError("no prompt has a corruption of equal token length; try corruption=noise")
    totals = {i: torch.zeros(len(g.sites), dtype=torch.float64) for i, g in enumerate(groups)}
    count = 0
    last = keep_last(model)  # the metric reads the last position only
    was_training = model.training
    model.eval()
    bar = tqdm(total=len(todo) * (1 if config.method == "attribution" else 1 + len(groups)),
               desc=f"{config.method} patching", disable=not progress)
    try:
        for b_i, batch in enumerate(todo):
            pos = (batch.subject_mask if positions == "subject" else torch.ones_like(batch.subject_mask))[..., None]
            clean: dict = {}
            with torch.no_grad(), hook_session(model) as hs:
                for i, g in enumerate(groups):
                    hs.read(g.module, g.io, clean, i)
                model(input_ids=batch.ids, **last)
            clean = {i: a.clone() for i, a in clean.items()}
            if config.method == "attribution":
                acts: dict = {}
                with hook_session(model) as hs:
                    ids = _corrupt_input(model, batch, config, hs, config.seed + b_i)
                    for i, g in enumerate(groups):
                        hs.read(g.module, g.io, acts, i, detach=False)
                    metric = logit_diff(model(input_ids=ids, **last).logits, batch).sum()
                keys = list(acts)
                grads = torch.autograd.grad(metric, [acts[i] for i in keys])
                for i, grad in zip(keys, grads):
                    contrib = (clean[i] - acts[i].detach()) * grad * pos
                    totals[i] += groups[i].per_node(contrib.sum((0, 1))).double()
                bar.update(1)
            else:
                with torch.no_grad():
                    with hook_session(model) as hs:
                        ids = _corrupt_input(model, batch, config, hs, config.seed + b_i)
                        base = logit_diff(model(input_ids=ids, **last).logits, batch)
                    # several nodes per forward: the batch stacked once per node, each copy
                    # patching its own node (small batches of a real task fill the matrix units)
                    per_pass = max(1, config.batch_size // len(batch.prompts))
                    for i, g in enumerate(groups):
                        for start in range(0, len(g.sites), per_pass):
                            nodes = range(start, min(start + per_pass, len(g.sites)))
                            stacked = replace(batch, answer=batch.answer.repeat(len(nodes)),
                                              wrong=batch.wrong.repeat(len(nodes), 1))
                            with hook_session(model) as hs:
                                ids = _corrupt_input(model, batch, config, hs, config.seed + b_i, len(nodes))
                                hs.patch(g.module, g.io, _restore_nodes(clean[i], pos, nodes, g.width))
                                patched = logit_diff(model(input_ids=ids, **last).logits, stacked)
                            totals[i][start : nodes.stop] += (patched.reshape(len(nodes), -1) - base).sum(1).double()
                        bar.update(1)
                    bar.update(1)
            count += len(batch.prompts)
    finally:
        bar.close()
        model.train(was_training)
    return {i: (t / max(count, 1)).float() for i, t in totals.items()}


@torch.no_grad()
def resid_at_subject(loaded, prompts, batch_size: int = 64) -> tuple[list[torch.Tensor], list]:
    """hook_resid_post of every layer at each prompt's last subject token: [n, d] per layer."""
    model = loaded.model
    n_layers = model.config.num_hidden_layers
    points = [resolve(HookSite(L, "hook_resid_post"), model) for L in range(n_layers)]
    feats: list[list[torch.Tensor]] = [[] for _ in range(n_layers)]
    order, last_only = [], keep_last(model)
    for batch in batches(prompts, batch_size):
        store: dict = {}
        with hook_session(model) as hs:
            for L, r in enumerate(points):
                hs.read(r.module, r.io, store, L)
            model(input_ids=batch.ids, **last_only)
        last = torch.tensor([max(p.subject) for p in batch.prompts])
        for L in range(n_layers):
            feats[L].append(store[L][torch.arange(len(last)), last].float())
        order.extend(batch.prompts)
    return [torch.cat(f) for f in feats], order


def lookup_layers(loaded, task, config: CircuitConfig) -> tuple[list[int], dict]:
    """FLU: the layers up to where the forget attributes become linearly decodable at the
    last subject token (probes trained on retain prompts, tested on forget prompts)."""
    tok = loaded.tokenizer
    train = build_prompts(tok, task, "retain", max_facts=config.max_facts and 4 * config.max_facts, seed=config.seed)
    test = build_prompts(tok, task, "forget", max_facts=config.max_facts, seed=config.seed)
    x_tr, p_tr = resid_at_subject(loaded, train, config.batch_size)
    x_te, p_te = resid_at_subject(loaded, test, config.batch_size)
    accs = []
    for L in range(len(x_tr)):
        accs.append(probe_accuracy(x_tr[L], [(p.example.fact.relation, p.example.fact.answer) for p in p_tr],
                                   x_te[L], [(p.example.fact.relation, p.example.fact.answer) for p in p_te],
                                   seed=config.seed))
    n_layers = len(accs)
    best = max(accs)
    sizes: dict = {}
    for p in p_tr:
        sizes.setdefault(p.example.fact.relation, set()).add(p.example.fact.answer)
    chance = sum(1 / max(1, len(sizes.get(p.example.fact.relation, ()))) for p in p_te) / max(1, len(p_te))
    info = {"probe_accuracy": [round(a, 4) for a in accs], "probe_chance": round(chance, 4)}
    if not best >= 2 * chance:
        end = max(0, n_layers - 2)
        info["probe_note"] = (f"no layer decodes the forget attributes at the last subject token (best probe "
                              f"{best:.3f}, chance {chance:.3f}): every layer but the last is used")
    else:
        end = next(L for L, a in enumerate(accs) if a >= config.probe_threshold * best)
    info["lookup_end"] = end
    return list(range(end + 1)), info


@register
class Circuits(Localiser):
    name = "circuits"
    kinds = frozenset({SiteKind.HEAD, SiteKind.HOOK, SiteKind.NEURON})
    summary = "activation / attribution patching of heads, MLP outputs and neurons (OCT or FLU)"
    Config = CircuitConfig

    def localise(self, loaded, task, config: CircuitConfig, progress: bool) -> Localisation:
        model, tok = loaded.model, loaded.tokenizer
        layers = check_layers(model, config.layers)
        info: dict = {}
        kinds = config.node_kinds
        if config.mode == "flu":
            if "head" in kinds:
                raise WorkbenchInputError("mode=flu localises MLPs at the subject tokens: nodes must be mlp and/or neuron")
            keep, info = lookup_layers(loaded, task, config)
            layers = [L for L in layers if L in keep]
        groups = node_groups(model, kinds, layers)
        positions = "subject" if config.mode == "flu" else "all"
        forget = build_prompts(tok, task, "forget", max_facts=config.max_facts, seed=config.seed)
        scores = patching_scores(loaded, forget, groups, config, positions, progress)
        if config.contrast:
            retain = build_prompts(tok, task, "retain", max_facts=config.max_facts, seed=config.seed)
            rscores = patching_scores(loaded, retain, groups, config, positions, progress)
        sites, values = [], []
        for i, g in enumerate(groups):
            v = scores[i].abs()
            if config.contrast:
                v = v - config.contrast * rscores[i].abs()
            sites.extend(g.sites)
            values.append(v)
        info["signed"] = [float(x) for i in range(len(groups)) for x in scores[i]] if len(sites) <= 5000 else None
        return Localisation(tuple(sites), torch.cat(values), info)
