"""`probe()`: measure the original, the edited and the oracle model on the same data and
report them side by side.

Each (family, model) measurement is cached under a content hash of (model weights, the
edit's identity for hook-level edits, the probed task, the family's config, code version);
a second call with the same inputs reads the stored JSON instead of recomputing.
"""
from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass
from typing import Callable, ContextManager

from workbench.progress import tqdm

from workbench import cache
from workbench.registry import config_from_dict

from . import behaviour, internals, relearn  # noqa: F401  (register the families)
from .base import CODE_VERSION, FAMILIES, Context, ProbeConfig, nonmember_facts, subsample
from .result import ProbeResult


@dataclass
class Edited:
    """An edit to probe: `apply()` returns a context manager that puts the edit on the
    original model (weights and/or hooks) and takes it off again; `identity` names it."""

    name: str
    apply: Callable[[], ContextManager]
    identity: str


def fingerprint(model) -> str:
    from workbench.localise.localisation import model_fingerprint

    return model_fingerprint(model)


def _family_config(cfg: ProbeConfig, name: str) -> dict:
    keys = {"max_facts", "seed"}
    prefixes = {"behaviour": ("samples", "generate_tokens", "tofu_form"), "tofu": ("tofu_form", "generate_tokens"),
                "muse": ("mink_k", "generate_tokens", "tofu_form"), "traces": ("trace_vectors",),
                "latent": (), "prompts": ("tofu_form",), "relearn": ("relearn_",)}[name]
    d = cfg.to_dict()
    return {k: v for k, v in d.items() if k in keys or any(k.startswith(p) for p in prefixes)}


def _cached(kind_key: dict, measure: Callable[[], dict], use_cache: bool) -> tuple[dict, bool]:
    path = cache.cache_root() / "probes" / f"{kind_key['family']}-{cache.content_hash(kind_key)}.json"
    if use_cache and path.is_file():
        return json.loads(path.read_text()), True
    raw = measure()
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        cache.write_json(path, raw, sort_keys=False, default=None)  # measurement order; no silent str()
    return raw, False


def resolve_oracle(original, oracle):
    """`oracle`: "auto" (the original's twin where it has one), a LoadedModel, a spec, or
    None. Returns (LoadedModel or None, reason when None)."""
    if oracle is None:
        return None, "not requested"
    if oracle == "auto":
        spec = original.oracle_spec
        if spec is None:
            return None, (f"no oracle for {original.spec}: an oracle is the same model trained without "
                          f"the forget set, which exists only for the testbed models")
        oracle = spec
    if isinstance(oracle, str):
        from workbench.models import load

        return load(oracle), ""
    return oracle, ""


def probe(original, task=None, *, edited: Edited | None = None, oracle="auto",
          config: ProbeConfig | dict | None = None, progress: bool = True, use_cache: bool = True,
          on_step: Callable[[str, str, int, int], None] | None = None) -> ProbeResult:
    """Probe `original` (a LoadedModel), `edited` (an edit applied to it) and the oracle."""
    if config is None:
        config = ProbeConfig()
    elif isinstance(config, dict):
        config = config_from_dict(ProbeConfig, config)
    config.check()
    full_task = task if task is not None else original.task()
    sub = subsample(full_task, config.max_facts, config.seed)
    ctx = Context(sub, full_task, config, original, nonmember_facts(sub))
    oracle_model, why = resolve_oracle(original, oracle)
    roles = {"original": original.model}
    models = {"original": original.spec}
    missing = {}
    if edited is not None:
        models["edited"] = f"{original.spec} + {edited.name}"
    else:
        missing["edited"] = "no edit given"
    if oracle_model is not None:
        models["oracle"] = oracle_model.spec
    else:
        missing["oracle"] = why
    families = [FAMILIES.get(n) for n in config.families]
    toks = {"original": original.tokenizer, "edited": original.tokenizer,
            "oracle": oracle_model.tokenizer if oracle_model is not None else None}
    raws: dict[str, dict] = {f.name: {} for f in families}
    seconds: dict[str, dict] = {f.name: {} for f in families}
    reused: dict[str, dict] = {f.name: {} for f in families}
    base_fp = fingerprint(original.model)
    plan = [r for r in ("original", "edited", "oracle") if r in models]
    if any(f.needs_original for f in families):
        from .internals import original_vectors

        try:
            original_vectors(ctx)  # the original's weights, read before any edit is put on
        except ValueError:
            pass  # no value vectors (an MoE): the traces family says so in its notes
    total = len(plan) * len(families)
    bar = tqdm(total=total, desc="probing", disable=not progress)
    done = 0
    for role in plan:
        model = oracle_model.model if role == "oracle" else original.model
        scope = edited.apply() if role == "edited" else contextlib.nullcontext()
        with scope:
            fp = base_fp if role == "original" else fingerprint(model)
            identity = fp + (f"+{edited.identity}" if role == "edited" else "")
            for fam in families:
                bar.set_description(f"probing {role}: {fam.name}")
                if on_step is not None:
                    on_step(role, fam.name, done, total)
                key = {"family": fam.name, "model": identity, "task": sub.content_hash,
                       "config": _family_config(config, fam.name), "version": CODE_VERSION,
                       "original": base_fp if fam.needs_original else None}
                t0 = time.perf_counter()
                raws[fam.name][role], reused[fam.name][role] = _cached(
                    key, lambda: fam.measure(ctx, model, toks[role]), use_cache)
                seconds[fam.name][role] = round(time.perf_counter() - t0, 2)
                done += 1
                bar.update(1)
    bar.close()
    if on_step is not None:
        on_step("", "done", total, total)
    metrics, details = [], {}
    for fam in families:
        m, d = fam.compare(ctx, raws[fam.name], missing)
        metrics += m
        details[fam.name] = d
    for m in metrics:  # a value that could not be measured is said so, never a silent blank
        for role, v in list(m.values.items()):
            if v is None or not math.isfinite(v):
                m.values.pop(role)
                m.notes.setdefault(role, "not measurable here (no data for it: an empty split or form, "
                                         "or a reference value of 0)")
    return ProbeResult(task=full_task.name, task_hash=sub.content_hash, models=models, metrics=metrics,
                       missing=missing, details=details, config=config.to_dict(), seconds=seconds,
                       cached=reused)

