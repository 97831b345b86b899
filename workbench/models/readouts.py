"""What can be read off a model without changing it: its content fingerprint, accuracies on a
task's examples, mean activations at sites, MLP value vectors and their vocabulary projection,
and the residual stream at the last prompt token. Localisers, operators, checks and probes
all read models through these."""
from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import WorkbenchInputError
from ..hooks import hook_session
from ..sites import HookSite, Site, WeightSite
from ..tasks.prompts import eval_examples, same_length_batches
from .arch import resolve, table_for
from .scoring import accuracy, score_examples

if TYPE_CHECKING:
    from . import LoadedModel


def model_fingerprint(model: nn.Module) -> str:
    """Content hash of a model's parameters (names, shapes and bytes)."""
    h = hashlib.sha256()
    for name, p in model.state_dict().items():
        h.update(name.encode())
        h.update(str(tuple(p.shape)).encode())
        h.update(p.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


@torch.no_grad()
def accuracies(loaded: "LoadedModel", task, max_facts: int | None = 200, examples: dict | None = None) -> dict[str, float]:
    """Exact-answer accuracy on forget and retain examples (`tasks.prompts.eval_examples`)."""
    examples = examples or eval_examples(task, max_facts)
    return {split: accuracy(score_examples(loaded.model, loaded.tokenizer, exs, 128))
            for split, exs in examples.items()}


def activation_point(site: Site, model: nn.Module) -> tuple[str, str, tuple]:
    """(module path, "input"|"output", last-axis slice) where a site's activation lives."""
    r = resolve(site, model)
    if r.module is None:
        raise WorkbenchInputError(f"site {str(site)!r} has no activation to read or ablate")
    return r.module, r.io, r.act_index


@torch.no_grad()
def mean_activations(loaded: "LoadedModel", task, points, max_facts: int | None = 200,
                     batch_size: int = 64) -> dict[tuple, torch.Tensor]:
    """Mean over retain prompts of each activation point (module, io), at every position but
    the first (BOS / attention-sink activations are outliers that would dominate the mean)."""
    points = set(points)
    exs = eval_examples(task, max_facts)["retain"]
    sums: dict = {}
    count = 0
    tok = loaded.tokenizer
    seqs = [tok(ex.prompt)["input_ids"] for ex in exs]
    dev = next(loaded.model.parameters()).device
    with hook_session(loaded.model) as hs:
        store: dict = {}
        for m, io in points:
            hs.read(m, io, store, (m, io))
        for idx in same_length_batches([len(s) for s in seqs], batch_size):  # no padding
            ids = torch.tensor([seqs[i] for i in idx], device=dev)
            loaded.model(input_ids=ids)
            for key, act in store.items():
                sums[key] = sums.get(key, 0) + act[:, 1:].double().sum((0, 1)).cpu()
            count += ids.shape[0] * (ids.shape[1] - 1)
    return {k: (v / count).float() for k, v in sums.items()}


def value_vectors(model: nn.Module, layer: int) -> torch.Tensor:
    """[d_mlp, d_model]: row j is value vector v_{L,j} (column j of the MLP down projection)."""
    if "neuron" not in table_for(model).units:
        raise WorkbenchInputError(f"{table_for(model).name} models have no dense MLP value vectors "
                                  f"(their MLPs are experts)")
    ps = resolve(WeightSite(layer, "mlp.W_out"), model).params[0]
    return ps.view(model).detach().T


def vocab_projection(model: nn.Module, vectors: torch.Tensor) -> torch.Tensor:
    """[n, V] logits of each vector through the raw unembedding (no final norm)."""
    w_u = resolve(WeightSite(None, "unembed.W_U"), model).params[0].view(model).detach()
    return vectors.float() @ w_u.float().T


def top_tokens(model: nn.Module, vectors: torch.Tensor, k: int) -> torch.Tensor:
    return vocab_projection(model, vectors).topk(k, dim=-1).indices


@torch.no_grad()
def last_token_states(model: nn.Module, tok, prompts: list[str], batch_size: int = 64) -> torch.Tensor:
    """[N, n_layers, d_model]: resid_post of every layer at each prompt's last token."""
    n_layers = model.config.num_hidden_layers
    points = [resolve(HookSite(L, "hook_resid_post"), model) for L in range(n_layers)]
    seqs = [tok(p)["input_ids"] for p in prompts]
    out = torch.zeros(len(seqs), n_layers, model.config.hidden_size)
    dev = next(model.parameters()).device
    store: dict = {}
    with hook_session(model) as hs:
        for L, r in enumerate(points):
            hs.read(r.module, r.io, store, L)
        for idx in same_length_batches([len(s) for s in seqs], batch_size):
            model(input_ids=torch.tensor([seqs[i] for i in idx], device=dev))
            for L in range(n_layers):
                out[idx, L] = store[L][:, -1].float().cpu()
    return out
