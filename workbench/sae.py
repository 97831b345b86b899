"""Sparse autoencoders trained with sae-lens on a model's own activations.

`train_sae(loaded, SAEConfig(...))` runs sae-lens' `LanguageModelSAETrainingRunner` on the
model's residual stream (`blocks.L.hook_resid_post`) over text the project has offline: the
testbed corpus for testbed models; for pretrained models the real-knowledge facts in every
form plus the model's own greedy continuations of them. The model is wrapped by sae-lens'
`HookedProxyLM` (hook names = HF module paths: `model.layers.L` is `blocks.L.hook_resid_post`)
around a *copy* of the module, so the shared model never carries sae-lens' hooks.

The SAE is saved in sae-lens' own format (`cfg.json` + `sae_weights.safetensors`) in the cache,
keyed by (model weights, config, text, sae-lens version), next to `workbench.json` with the
metrics measured here on held-out task text: L0, explained variance, dead-feature fraction.
`load_sae(spec)` accepts a cached directory, any sae-lens directory, or `release/sae_id` of
a sae-lens pretrained release (needs the hub).
"""
from __future__ import annotations

import copy
import functools
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch

from . import cache
from .errors import WorkbenchInputError
from .hooks import at_sequence_start, hook_session
from .models.arch import table_for
from .tasks.task import SPLITS
from .tasks.prompts import same_length_batches

CODE_VERSION = 1


@dataclass(frozen=True)
class SAEConfig:
    layer: int | None = None  # resid_post of this layer; None = an early-middle layer, n_layers // 4
    # (SAE unlearning work uses early-middle layers: Gemma-2 layers 3 and 7 in Farrell et al.)
    architecture: Literal["topk", "standard"] = "topk"
    expansion: int = 8  # d_sae = expansion * d_model
    k: int = 32  # topk: active features per token
    l1_coefficient: float = 5.0  # standard (ReLU + L1)
    training_tokens: int = 400_000
    context_size: int = 32
    batch_tokens: int = 1024
    lr: float = 4e-4
    continuations: int = 24  # pretrained models: greedy tokens generated per fact prompt
    seed: int = 0

    def check(self, n_layers: int | None = None):
        for key in ("expansion", "k", "training_tokens", "context_size", "batch_tokens"):
            if getattr(self, key) < 1:
                raise WorkbenchInputError(f"option {key}={getattr(self, key)}: expected a positive integer")
        if n_layers is not None and self.layer is not None and not 0 <= self.layer < n_layers:
            raise WorkbenchInputError(f"option layer={self.layer}: expected 0..{n_layers - 1}")

    def resolved_layer(self, n_layers: int) -> int:
        return max(1, n_layers // 4) if self.layer is None else self.layer


def hook_name(layer: int) -> str:
    return f"blocks.{layer}.hook_resid_post"


def _module_path(model, layer: int) -> str:
    path, io = table_for(model).hooks["hook_resid_post"]
    if io != "output":
        raise WorkbenchInputError(f"resid_post of {table_for(model).name} is not a module output: sae-lens cannot hook it")
    return path.format(L=layer)


# -- text ------------------------------------------------------------------------------------
def training_texts(loaded, cfg: SAEConfig) -> list[str]:
    """Offline text from the task's train view only (`tasks.declared.train_view`: no
    evaluation form, no retain-eval person, no neighbour): the testbed's trained texts of it,
    or the real facts in its forms + the model's own continuations."""
    from .tasks.declared import train_view

    if loaded.testbed is not None:
        from .tasks.world import World

        view = train_view(World(loaded.testbed.world).task())
        return [ex.text for s in SPLITS for ex in view.examples(s) if ex.trained]
    from .models.generate import greedy_texts
    from .tasks.realworld import real_task

    task = train_view(real_task())
    texts = [ex.text for s in SPLITS for ex in task.examples(s) if ex.kind != "mcq"]
    main = task.forms_of("declarative")[0]  # continuations of the main form: the model's own text
    prompts = [task.render(f, main).prompt for f in task.all_facts if f.relation in task.forms[main].templates]
    return texts + greedy_texts(loaded.model, loaded.tokenizer, prompts, cfg.continuations)


def _rows(tokenizer, texts: list[str], context: int) -> list[list[int]]:
    """One text per row ([bos] + tokens + [eos]), right-padded: the padding is excluded from
    training and, with causal attention, does not change the earlier positions."""
    bos = tokenizer.bos_token_id
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    rows = []
    for t in texts:
        ids = tokenizer(t, add_special_tokens=False)["input_ids"]
        ids = ([bos] if bos is not None else []) + ids[: context - 2] + ([eos] if eos is not None else [])
        rows.append(ids + [pad] * (context - len(ids)))
    return rows


def special_ids(tokenizer) -> list[int]:
    return sorted({i for i in (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
                   if i is not None})


# -- training --------------------------------------------------------------------------------
def _key(loaded, cfg: SAEConfig, texts: list[str]) -> dict:
    import sae_lens

    from .models.readouts import model_fingerprint

    layer = cfg.resolved_layer(loaded.model.config.num_hidden_layers)
    return {"model": model_fingerprint(loaded.model), "config": {**asdict(cfg), "layer": layer},
            "text": cache.content_hash(texts),
            "sae_lens": sae_lens.__version__, "version": CODE_VERSION}


def sae_path(loaded, cfg: SAEConfig, texts: list[str] | None = None) -> Path:
    texts = training_texts(loaded, cfg) if texts is None else texts
    layer = cfg.resolved_layer(loaded.model.config.num_hidden_layers)
    return cache.entry_path("saes", f"{Path(str(loaded.path)).name}-L{layer}", cache.content_hash(_key(loaded, cfg, texts)))


def train_sae(loaded, cfg: SAEConfig = SAEConfig(), progress: bool = True) -> tuple[object, dict, Path, bool]:
    """Train (or load from the cache) an SAE; returns (sae, metrics, directory, trained_now)."""
    n_layers = loaded.model.config.num_hidden_layers
    cfg.check(n_layers)
    texts = training_texts(loaded, cfg)
    path = sae_path(loaded, cfg, texts)
    path, built = cache.get_or_build(path, lambda out: _build(loaded, cfg, texts, out, progress))
    sae = load_sae(str(path))
    return sae, json.loads((path / "workbench.json").read_text())["metrics"], path, built


def _build(loaded, cfg: SAEConfig, texts: list[str], out: Path, progress: bool) -> None:
    import datasets
    from sae_lens import (LanguageModelSAERunnerConfig, LanguageModelSAETrainingRunner, LoggingConfig,
                          StandardTrainingSAEConfig, TopKTrainingSAEConfig)
    from sae_lens.load_model import HookedProxyLM

    layer = cfg.resolved_layer(loaded.model.config.num_hidden_layers)
    module = _module_path(loaded.model, layer)
    d_in = loaded.model.config.hidden_size
    d_sae = cfg.expansion * d_in
    sae_cfg = (TopKTrainingSAEConfig(d_in=d_in, d_sae=d_sae, k=cfg.k) if cfg.architecture == "topk"
               else StandardTrainingSAEConfig(d_in=d_in, d_sae=d_sae, l1_coefficient=cfg.l1_coefficient))
    rows = _rows(loaded.tokenizer, texts, cfg.context_size)
    if not rows:
        raise WorkbenchInputError(f"no training text for an SAE on {loaded.spec}")
    dataset = datasets.Dataset.from_dict({"input_ids": rows})
    # the mixing buffer (n_batches_in_buffer x context tokens in this sae-lens) must hold two
    # training batches
    prompts = max(8, math.ceil(2 * cfg.batch_tokens / cfg.context_size))
    steps = max(1, cfg.training_tokens // cfg.batch_tokens)
    runner_cfg = LanguageModelSAERunnerConfig(
        sae=sae_cfg, model_name=str(loaded.path), model_class_name="AutoModelForCausalLM", hook_name=module,
        dataset_path="workbench-offline", is_dataset_tokenized=True, streaming=False,
        context_size=cfg.context_size, prepend_bos=False, exclude_special_tokens=special_ids(loaded.tokenizer),
        training_tokens=cfg.training_tokens, train_batch_size_tokens=cfg.batch_tokens,
        store_batch_size_prompts=prompts, n_batches_in_buffer=prompts, lr=cfg.lr, seed=cfg.seed,
        dead_feature_window=max(20, steps // 5), feature_sampling_window=max(40, steps // 2),
        device="cpu", dtype="float32", logger=LoggingConfig(log_to_wandb=False),
        output_path=str(out), checkpoint_path=None, n_checkpoints=0, verbose=progress,
        n_batches_for_norm_estimate=10,
    )
    torch.manual_seed(cfg.seed)
    # a copy: HookedProxyLM registers forward hooks it never removes
    proxy = HookedProxyLM(copy.deepcopy(loaded.model), loaded.tokenizer, hook_names=[module])
    t0 = time.perf_counter()
    LanguageModelSAETrainingRunner(runner_cfg, override_model=proxy, override_dataset=dataset).run()
    seconds = time.perf_counter() - t0
    sae = load_sae(str(out))
    metrics = evaluate_sae(loaded, sae, layer)
    cache.write_json(out / "workbench.json", {
        "model": loaded.spec, "site": hook_name(layer), "module": module, "config": asdict(cfg),
        "texts": len(texts), "metrics": {**metrics, "train_seconds": round(seconds, 1)},
    })


def load_sae(spec: str):
    """A directory in sae-lens format, or `release/sae_id` of a sae-lens pretrained release."""
    from sae_lens import SAE

    p = Path(spec).expanduser()
    if p.is_dir():
        if not (p / "cfg.json").is_file():
            raise WorkbenchInputError(f"SAE directory {spec!r} has no cfg.json: expected a sae-lens directory")
        return SAE.load_from_disk(str(p), device="cpu").requires_grad_(False)
    release, sep, sae_id = spec.partition("/")
    if not sep:
        raise WorkbenchInputError(f"SAE {spec!r}: expected a sae-lens directory or RELEASE/SAE_ID of a pretrained release")
    try:
        return SAE.from_pretrained(release, sae_id, device="cpu").requires_grad_(False)
    except Exception as exc:  # hub errors come in many types; name the input and the cause
        raise WorkbenchInputError(f"SAE {spec!r}: could not load the pretrained release (it needs the Hugging Face "
                         f"hub, which may be offline): {type(exc).__name__}: {str(exc)[:200]}") from None


@functools.lru_cache(maxsize=8)
def cached_sae(spec: str):
    """`load_sae`, kept in memory (an edit's hook loads its SAE once)."""
    return load_sae(spec)


def clamp_fn(sae, cols, c: float):
    """The conditional negative clamp as an activation function: f = enc(x); err = x - dec(f);
    f_j = -c for the features `cols` that fire (f_j > 0); x' = err + dec(f). Position 0 (BOS)
    is left as it is."""
    cols = torch.as_tensor(cols, dtype=torch.long)

    def clamp(x):
        sae.to(x.device)
        f = sae.encode(x.float())
        err = x.float() - sae.decode(f)
        g = f.clone()  # decode(f) keeps f for the backward pass: never write into it
        sel = g[..., cols]
        g[..., cols] = torch.where(sel > 0, torch.full_like(sel, -c), sel)
        out = (err + sae.decode(g)).to(x.dtype)
        if out.dim() == 3 and at_sequence_start():  # [batch, position, d]: the first position (BOS) stays as it is
            out = torch.cat([x[:, :1], out[:, 1:]], 1)
        return out
    return clamp


# -- reading activations and metrics -------------------------------------------------------------
@torch.no_grad()
def resid_tokens(loaded, layer: int, texts: list[str], batch_size: int = 64) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """[N, d] resid_post activations of every non-special token, and (text, position) of each."""
    tok, model = loaded.tokenizer, loaded.model
    module = _module_path(model, layer)
    special = set(special_ids(tok))
    seqs = [tok(t)["input_ids"] for t in texts]
    acts, where = [], []
    store: dict = {}
    with hook_session(model) as hs:
        hs.read(module, "output", store, "x")
        for idx in same_length_batches([len(s) for s in seqs], batch_size):
            model(input_ids=torch.tensor([seqs[i] for i in idx], device=next(model.parameters()).device))
            x = store["x"].float().cpu()
            for r, i in enumerate(idx):
                keep = [p for p, t in enumerate(seqs[i]) if t not in special and p > 0]
                acts.append(x[r, keep])
                where += [(i, p) for p in keep]
    return (torch.cat(acts) if acts else torch.zeros(0, model.config.hidden_size)), where


def eval_texts(loaded) -> list[str]:
    task = loaded.task()
    return [ex.text for s in ("forget", "retain", "neighbour") for ex in task.examples(s) if ex.kind != "mcq"]


@torch.no_grad()
def evaluate_sae(loaded, sae, layer: int, texts: list[str] | None = None, max_tokens: int = 20_000) -> dict:
    """L0, explained variance (1 - Var(x - x̂) / Var(x)), dead fraction, on task text."""
    texts = eval_texts(loaded) if texts is None else texts
    x, _ = resid_tokens(loaded, layer, texts)
    if len(x) > max_tokens:
        x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:max_tokens]]
    sae.to("cpu")
    f = sae.encode(x)
    rec = sae.decode(f)
    ev = 1 - ((x - rec) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
    active = (f > 0)
    return {"l0": float(active.sum(-1).float().mean()), "explained_variance": float(ev),
            "dead_fraction": float((active.sum(0) == 0).float().mean()), "eval_tokens": len(x),
            "d_sae": int(f.shape[-1])}
