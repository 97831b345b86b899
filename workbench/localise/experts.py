"""MoE expert attribution (UOE, Zhuang et al. 2024/25).

Affinity of routed expert i in layer l on forget data:
    s_i = (1/Z) Σ_sequences (1/L_j) Σ_tokens g_{i,t}
with g the router softmax over all routed experts (before top-k), tokens = every real token of
prompt + answer except the first (BOS). Sites `blocks.L.mlp.expert.E`, score = forget affinity;
UOE then unlearns the single top expert (M=1). Provenance carries the retain affinity and the
per-layer top-k selection rates on forget and retain text (routing statistics), and
`selection_overlap` compares which experts two models pick on the same tokens.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import WorkbenchInputError
from ..hooks import hook_session
from ..models.arch import resolve, table_for
from ..sites import ExpertSite, HookSite, SiteKind
from ..tasks.prompts import answer_batches, split_examples
from .base import Localiser, register
from .localisation import Localisation


@dataclass(frozen=True)
class ExpertConfig:
    max_facts: int | None = None
    batch_size: int = 64
    seed: int = 0


def _routers(model):
    table = table_for(model)
    if "expert" not in table.units:
        raise WorkbenchInputError(f"expert attribution needs a mixture-of-experts model; {table.name} models have no experts")
    n_layers = model.config.num_hidden_layers
    return [resolve(HookSite(L, "mlp.gate.hook_out"), model) for L in range(n_layers)]


@torch.no_grad()
def routing(loaded, examples, batch_size: int = 64, indices: bool = False):
    """Per layer: the mean-per-sequence router softmax averaged over sequences [E], the
    share of tokens each expert is selected for [E], and (optionally) the top-k indices of
    every real token, in order."""
    model, tok = loaded.model, loaded.tokenizer
    routers = _routers(model)
    k = model.config.num_experts_per_tok
    n_layers, n_exp = len(routers), model.config.num_local_experts
    affinity = torch.zeros(n_layers, n_exp, dtype=torch.float64)
    selected = torch.zeros(n_layers, n_exp, dtype=torch.float64)
    picks: list[list[torch.Tensor]] = [[] for _ in range(n_layers)]
    n_seq = n_tok = 0
    for ids, mask, _labels in answer_batches(tok, examples, batch_size):
        store: dict = {}
        with hook_session(model) as hs:
            for L, r in enumerate(routers):
                hs.read(r.module, r.io, store, L)
            model(input_ids=ids, attention_mask=mask)
        real = mask.bool().clone()
        real[:, 0] = False  # BOS / first token
        for L in range(n_layers):
            g = torch.softmax(store[L].float().reshape(*ids.shape, n_exp), -1)
            per_seq = (g * real[..., None]).sum(1) / real.sum(1, keepdim=True).clamp(min=1)
            affinity[L] += per_seq.sum(0).double()
            top = g.topk(k, dim=-1).indices[real]  # [tokens, k]
            selected[L] += torch.bincount(top.flatten(), minlength=n_exp).double()
            if indices:
                picks[L].append(top)
        n_seq += ids.shape[0]
        n_tok += int(real.sum())
    out = (affinity / max(n_seq, 1)).float(), (selected / max(n_tok, 1)).float()
    return (*out, [torch.cat(p) for p in picks]) if indices else out


def selection_overlap(loaded_a, loaded_b, examples, batch_size: int = 64) -> list[float]:
    """Per layer: mean over tokens of |top-k(a) ∩ top-k(b)| / k on the same text (1 = the same
    experts). Without a router anchor, unlearning tends to shift routing (fake forgetting)."""
    *_, a = routing(loaded_a, examples, batch_size, indices=True)
    *_, b = routing(loaded_b, examples, batch_size, indices=True)
    return index_overlap(a, b)


def index_overlap(a: list[torch.Tensor], b: list[torch.Tensor]) -> list[float]:
    """Per layer: the selection overlap of two `routing(..., indices=True)` results."""
    out = []
    for ta, tb in zip(a, b):
        same = (ta[:, :, None] == tb[:, None, :]).any(-1).float().mean(-1)
        out.append(float(same.mean()))
    return out


@register
class Experts(Localiser):
    name = "experts"
    kinds = frozenset({SiteKind.EXPERT})
    summary = "UOE: MoE experts ranked by mean router affinity on forget text"
    Config = ExpertConfig

    def localise(self, loaded, task, config: ExpertConfig, progress: bool) -> Localisation:
        f_aff, f_sel = routing(loaded, split_examples(task, "forget", config.max_facts, config.seed), config.batch_size)
        r_aff, r_sel = routing(loaded, split_examples(task, "retain", config.max_facts, config.seed), config.batch_size)
        n_layers, n_exp = f_aff.shape
        sites = tuple(ExpertSite(L, e) for L in range(n_layers) for e in range(n_exp))
        return Localisation(sites, f_aff.reshape(-1), {
            "retain_affinity": r_aff.tolist(), "forget_selected": f_sel.tolist(), "retain_selected": r_sel.tolist()})
