"""`probe()`: measure the original, the edited and the oracle model on the same data and
report them side by side.

Each (family, model) measurement is cached under a content hash of (model weights, the
edit's identity for hook-level edits, the probed task, the family's config, shared options and
version); a second call with the same inputs reads the stored JSON instead of recomputing.
"""
from __future__ import annotations

import contextlib
import json
import math
import time
from typing import TYPE_CHECKING, Callable

from workbench import cache
from workbench.errors import WorkbenchInputError
from workbench.models.readouts import model_fingerprint
from workbench.progress import tqdm
from workbench.tasks.task import subsample

from .base import Context, EditLike, ProbeConfig, nonmember_facts
from .result import ProbeResult

if TYPE_CHECKING:
    from workbench.models import LoadedModel
    from workbench.sites import Site


def _cached(key: dict, measure: Callable[[], dict], use_cache: bool) -> tuple[dict, bool]:
    path = cache.cache_root() / "probes" / f"{key['family']}-{cache.content_hash(key)}.json"
    if use_cache and path.is_file():
        return json.loads(path.read_text()), True
    raw = measure()
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        cache.write_json(path, raw, sort_keys=False, default=None)  # measurement order; no silent str()
    return raw, False


def resolve_oracle(original: "LoadedModel", oracle) -> tuple["LoadedModel | None", str]:
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


def probe(original: "LoadedModel", task=None, *, edit: EditLike | None = None, oracle="auto",
          config: ProbeConfig | dict | None = None, trace_sites: "list[Site] | None" = None,
          progress: bool = True, use_cache: bool = True,
          on_step: Callable[[str, str, int, int], None] | None = None, label: str | None = None) -> ProbeResult:
    """Probe `original` (a LoadedModel), `edit` applied to it (any value with `name`,
    `identity` and `applied(model)`, e.g. a `workbench.edit.Edit`) and the oracle.
    `trace_sites`: the task's concept vectors, ranked, for the traces family; `label` names
    the edit in the result (default: `edit.name`)."""
    if config is None:
        config = ProbeConfig()
    elif isinstance(config, dict):
        config = ProbeConfig.from_options(config)
    if edit is not None and not all(hasattr(edit, a) for a in ("name", "identity", "applied")):
        raise WorkbenchInputError(f"edit {edit!r}: expected an edit (name, identity, applied(model)), "
                                  f"e.g. a workbench.edit.Edit")
    full_task = task if task is not None else original.task()
    sub = subsample(full_task, config.max_facts, config.seed)
    ctx = Context(sub, full_task, config, original, nonmember_facts(sub), trace_sites)
    oracle_model, why = resolve_oracle(original, oracle)
    models = {"original": original.spec}
    missing = {}
    if edit is not None:
        models["edited"] = f"{original.spec} + {label or edit.name}"
    else:
        missing["edited"] = "no edit given"
    if oracle_model is not None:
        models["oracle"] = oracle_model.spec
    else:
        missing["oracle"] = why
    families = [config.family(n) for n in config.families]
    toks = {"original": original.tokenizer, "edited": original.tokenizer,
            "oracle": oracle_model.tokenizer if oracle_model is not None else None}
    raws: dict[str, dict] = {f.name: {} for f in families}
    seconds: dict[str, dict] = {f.name: {} for f in families}
    reused: dict[str, dict] = {f.name: {} for f in families}
    base_fp = model_fingerprint(original.model)
    plan = [r for r in ("original", "edited", "oracle") if r in models]
    for fam in families:
        fam.prepare(ctx)  # before any edit is put on the original
    total = len(plan) * len(families)
    bar = tqdm(total=total, desc="probing", disable=not progress)
    done = 0
    for role in plan:
        model = oracle_model.model if role == "oracle" else original.model
        scope = edit.applied(original.model) if role == "edited" else contextlib.nullcontext()
        with scope:
            fp = base_fp if role == "original" else model_fingerprint(model)
            identity = fp + (f"+{edit.identity}" if role == "edited" else "")
            for fam in families:
                bar.set_description(f"probing {role}: {fam.name}")
                if on_step is not None:
                    on_step(role, fam.name, done, total)
                key = {**fam.cache_key(ctx), "model": identity, "task": sub.content_hash,
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
