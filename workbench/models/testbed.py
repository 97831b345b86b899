"""Testbed models: tiny Llama (dense) and Mixtral (MoE) models trained here on the testbed
world, each with an oracle twin trained the same way on everything except the forget set.

Spec: `testbed:<dense|moe>[?key=value&...]` with world keys (seed, people, attributes,
forget, neighbours) and model keys (oracle, train_seed, steps). The bare spec is the default
world of the demo. Trained weights are built into the cache, keyed by a content hash of the
whole recipe, never committed.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qsl

import torch
from transformers import AutoModelForCausalLM, LlamaConfig, MixtralConfig, PreTrainedTokenizerFast

from .. import cache
from ..errors import WorkbenchInputError
from ..tasks.world import World, WorldConfig
from .tokenizer import build_tokenizer
from .train import TrainConfig, train_lm

RECIPE_VERSION = 2  # 2: one thread per training process, the pair trained side by side, dense in bf16
TRAIN_THREADS = 1  # training is single-threaded: the same weights on any machine size
ARCHS = ("dense", "moe")
_BASE = dict(
    hidden_size=128, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4,
    max_position_embeddings=64, tie_word_embeddings=False, rms_norm_eps=1e-6,
    attn_implementation="eager",
)
MODEL_CONFIGS = {
    "dense": (LlamaConfig, dict(_BASE, intermediate_size=512)),
    "moe": (MixtralConfig, dict(_BASE, intermediate_size=256, num_local_experts=4,
                                num_experts_per_tok=2, output_router_logits=True,
                                router_aux_loss_coef=0.02)),
}
# Dense matmuls run in bf16 under autocast (AVX512-BF16: 26 ms a step instead of 47 ms; the
# quality floor holds). The MoE stays fp32 (its per-expert matmuls were slower in bf16) and
# trains with the eager experts loop (50 ms a step vs 60 ms for grouped_mm on one CPU). Both
# train 4,000 steps: the MoE's held-out question forms are fragile below that (2,400 steps gave
# 0.948 on one CPU but 0.812, 0.856 and 0.924 for three seeds on another, under the floor's
# 0.90; 4,000 steps gave 0.981 and 0.944 there).
# Dense bf16 is used only where the CPU computes bf16 natively (`TrainConfig.resolved`).
TRAIN_CONFIGS = {"dense": TrainConfig(precision="bf16"), "moe": TrainConfig()}
TRAIN_EXPERTS = {"moe": "eager"}


@lru_cache(maxsize=64)
def corpus_size(world: WorldConfig) -> int:
    """Training texts of a world's full model (its oracle twin trains the same number of steps)."""
    return len(World(world).corpus())


def scaled_steps(world: WorldConfig, base: int) -> int:
    """Training steps for a world: the default world's `base` steps (4,000: about 39 epochs of
    its 6,500 texts in batches of 64) scaled to the same number of epochs for a larger world,
    and never fewer than `base` for a smaller one (its held-out forms need the steps)."""
    return max(base, math.ceil(base * corpus_size(world) / corpus_size(WorldConfig())))


_WORLD_KEYS = {f.name: f.type for f in fields(WorldConfig)}
_MODEL_KEYS = ("oracle", "train_seed", "steps")
MAX_STEPS = 50_000  # an upper bound on `steps`, so that a typo cannot start a days-long training


@dataclass(frozen=True)
class TestbedSpec:
    arch: str
    world: WorldConfig = field(default_factory=WorldConfig)
    oracle: bool = False
    train_seed: int = 0
    steps: int | None = None

    __test__ = False  # not a pytest class

    def __post_init__(self):
        if self.steps is not None and not 1 <= self.steps <= MAX_STEPS:
            raise WorkbenchInputError(f"testbed option steps={self.steps}: expected 1..{MAX_STEPS:,} (the default "
                                      f"world trains 4,000; a 600-person world about 12,000)")
        if self.train_seed < 0:
            raise WorkbenchInputError(f"testbed option train_seed={self.train_seed}: expected an integer >= 0")

    @classmethod
    def parse(cls, text: str) -> "TestbedSpec":
        accepted = "testbed:dense or testbed:moe, optionally ?" + "&".join(
            f"{k}=..." for k in (*_WORLD_KEYS, *_MODEL_KEYS))
        body = text[len("testbed:"):] if text.startswith("testbed:") else None
        if not body:
            raise WorkbenchInputError(f"model spec {text!r}: expected {accepted}")
        arch, _, query = body.partition("?")
        if arch not in ARCHS:
            raise WorkbenchInputError(f"model spec {text!r}: unknown testbed {arch!r}; expected {accepted}")
        world, model = {}, {}
        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True) if query else []
        except ValueError:
            raise WorkbenchInputError(f"model spec {text!r}: malformed options {query!r}; expected {accepted}") from None
        for key, value in pairs:
            try:
                if key in _WORLD_KEYS:
                    world[key] = float(value) if key in ("forget", "neighbours") else int(value)
                elif key == "oracle":
                    if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                        raise ValueError
                    model[key] = value.lower() in ("1", "true", "yes")
                elif key in _MODEL_KEYS:
                    model[key] = int(value)
                else:
                    raise KeyError(key)
            except KeyError:
                raise WorkbenchInputError(f"model spec {text!r}: unknown option {key!r}; expected {accepted}") from None
            except ValueError:
                raise WorkbenchInputError(f"model spec {text!r}: bad value {value!r} for {key!r}") from None
        try:
            return cls(arch, WorldConfig(**world), **model)
        except ValueError as exc:
            raise WorkbenchInputError(f"model spec {text!r}: {exc}") from None

    def __str__(self) -> str:
        default = WorldConfig()
        # every digit (the spec names the model), and 1e+10 as 1e10: a query string reads "+" as a space
        parts = [f"{k}={_number(v)}" if isinstance(v, float) else f"{k}={v}"
                 for k, v in asdict(self.world).items() if v != getattr(default, k)]
        if self.oracle:
            parts.append("oracle=1")
        if self.train_seed:
            parts.append(f"train_seed={self.train_seed}")
        if self.steps is not None:
            parts.append(f"steps={self.steps}")
        return f"testbed:{self.arch}" + ("?" + "&".join(parts) if parts else "")

    def twin(self, oracle: bool = True, train_seed: int | None = None) -> "TestbedSpec":
        return replace(self, oracle=oracle, train_seed=self.train_seed if train_seed is None else train_seed)

    @property
    def train_config(self) -> TrainConfig:
        """The recipe as this machine trains it: explicit `steps`, else scaled to the world."""
        base = TRAIN_CONFIGS[self.arch]
        steps = self.steps if self.steps is not None else scaled_steps(self.world, base.steps)
        return replace(base, steps=steps).resolved()

    def recipe(self) -> dict:
        """Everything the trained weights depend on; its hash keys the cache entry."""
        cls, kwargs = MODEL_CONFIGS[self.arch]
        world = World(self.world)
        return {
            "task": world.task(holdout=False).content_hash,  # the holdout people are never trained
            "vocabulary": cache.content_hash(world.vocabulary()),
            "recipe_version": RECIPE_VERSION, "arch": self.arch, "config_class": cls.__name__,
            "model": kwargs, "world": self.world.to_dict(), "oracle": self.oracle,
            "train_seed": self.train_seed, "train": self.train_config.to_dict(),
            "train_threads": TRAIN_THREADS, "train_experts": TRAIN_EXPERTS.get(self.arch),
        }

    @property
    def cache_path(self) -> Path:
        name = f"testbed-{self.arch}" + ("-oracle" if self.oracle else "")
        return cache.entry_path("models", name, cache.content_hash(self.recipe()))


def _number(v: float) -> str:
    """A float as the shortest text that reads back as the same float (2.0 as 2)."""
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v).replace("e+", "e")


def untrained_model(arch: str, tok):
    """A freshly initialised testbed model of `arch` for tokenizer `tok` (seed torch first)."""
    cls, kwargs = MODEL_CONFIGS[arch]
    config = cls(vocab_size=len(tok), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                 eos_token_id=tok.eos_token_id, **kwargs)
    extra = {"experts_implementation": TRAIN_EXPERTS[arch]} if arch in TRAIN_EXPERTS else {}
    return AutoModelForCausalLM.from_config(config, **extra)


def token_sequences(tok, texts: list[str]) -> list[list[int]]:
    """Training sequences: each text's tokens and an end-of-sequence token."""
    return [tok(t)["input_ids"] + [tok.eos_token_id] for t in texts]


def _build(spec: TestbedSpec, out: Path, progress: bool, position: int = 0) -> None:
    world = World(spec.world)
    tok = build_tokenizer(world.vocabulary(), out)
    torch.manual_seed(spec.train_seed)
    model = untrained_model(spec.arch, tok)
    texts = world.corpus(include_forget=not spec.oracle)
    seqs = token_sequences(tok, texts)
    unk = sum(s.count(tok.unk_token_id) for s in seqs)
    if unk:
        raise RuntimeError(f"testbed tokenizer produced {unk} unknown tokens: vocabulary is incomplete")
    t0 = time.time()
    threads = torch.get_num_threads()
    torch.set_num_threads(TRAIN_THREADS)
    try:
        losses = train_lm(model, seqs, tok.pad_token_id, spec.train_config, seed=spec.train_seed,
                          desc=f"train {spec}", progress=progress, position=position)
    finally:
        torch.set_num_threads(threads)
    seconds = time.time() - t0
    model.save_pretrained(out)
    cache.write_json(out / "workbench.json", {
        "spec": str(spec), "recipe": spec.recipe(), "train_seconds": round(seconds, 1),
        "train_texts": len(texts), "train_tokens": sum(map(len, seqs)),
        "parameters": sum(p.numel() for p in model.parameters()), "losses": losses,
    })


def prepare(spec: TestbedSpec, progress: bool = True, twin: bool = True, position: int = 0) -> tuple[Path, bool]:
    """Build the model into the cache if needed; returns (directory, trained_now).

    Training is single-threaded, so when a full model and its oracle twin are both missing
    they are trained side by side in two processes (`twin=True`): on 2 cores the pair takes
    about 1.4x one model's time instead of 2x."""
    if twin and not spec.oracle and not cache.is_complete(spec.cache_path):
        other = spec.twin()
        if not cache.is_complete(other.cache_path):
            prepare_many([spec, other], progress)
    return cache.get_or_build(spec.cache_path, lambda out: _build(spec, out, progress, position))


def prepare_many(specs: list[TestbedSpec], progress: bool = True, workers: int | None = None) -> None:
    """Train every missing spec, `workers` (default: the cores) at a time, each in its own
    single-threaded process. A failure names the spec and ends with its error output."""
    import os
    import subprocess

    todo = [s for s in dict.fromkeys(specs) if not cache.is_complete(s.cache_path)]
    workers = max(1, workers or os.cpu_count() or 1)
    if len(todo) <= 1 or workers == 1:
        for s in todo:
            cache.get_or_build(s.cache_path, lambda out, s=s: _build(s, out, progress))
        return
    code = ("import sys; from workbench.models import testbed as t; "
            "t.prepare(t.TestbedSpec.parse(sys.argv[1]), bool(int(sys.argv[2])), twin=False, position=int(sys.argv[3]))")
    running: list[tuple[TestbedSpec, subprocess.Popen, int]] = []
    failures = []
    queue = list(todo)
    try:
        _run_queue(queue, running, failures, workers, code, progress)
    finally:  # interrupted: stop the children (their half-built entries are never trusted)
        for _, proc, _ in running:
            proc.kill()
    if failures:
        raise RuntimeError("training failed for " + "; ".join(failures))


def _run_queue(queue, running, failures, workers, code, progress) -> None:
    import subprocess
    import sys

    while queue or running:
        while queue and len(running) < workers:
            s = queue.pop(0)
            slot = min(set(range(workers)) - {p for _, _, p in running})
            running.append((s, subprocess.Popen([sys.executable, "-c", code, str(s), str(int(progress)), str(slot)],
                                                stderr=None if progress else subprocess.PIPE), slot))
        for item in list(running):
            s, proc, _ = item
            if proc.poll() is not None:
                running.remove(item)
                if proc.returncode != 0:
                    err = proc.stderr.read().decode()[-1500:] if proc.stderr else ""
                    failures.append(f"{s}: exit code {proc.returncode} {err}")
        time.sleep(0.2)


def load(spec: TestbedSpec, progress: bool = True):
    path, _ = prepare(spec, progress)
    tok = PreTrainedTokenizerFast.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model.eval()
    return model, tok, path
