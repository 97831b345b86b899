"""`probe()`: measure the original, the edited and the oracle model on the same data and
report them side by side.

Each (family, model) measurement is cached under a content hash of (model weights, the
edit's identity for hook-level edits, the probed task, the family's config, shared options and
version); a second call with the same inputs reads the stored JSON instead of recomputing.

A family that trains the model it measures (an attack: `ProbeFamily.trains_model`) measures
an edit as a user would receive it: the baked checkpoint where the edit can be exported (its
hooks folded into weights, so the attack can move the edited weights). An edit whose hooks
depend on the input cannot be baked: the attack then trains the hooked model, which it cannot
reach through the hooks, and the family also measures the edit's weights without its hooks
(`weights_only`), what an attacker holding only the weights would start from.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import sys
import time
from typing import TYPE_CHECKING, Callable

from workbench import cache
from workbench.errors import WorkbenchInputError
from workbench.models.readouts import model_fingerprint
from workbench.progress import tqdm
from workbench.tasks.task import subsample

from .base import Context, EditLike, ProbeConfig, nonmember_facts
from .result import ROLES, ProbeResult

if TYPE_CHECKING:
    from workbench.models import LoadedModel
    from workbench.sites import Site


def _cached(key: dict, measure: Callable[[], dict], use_cache: bool) -> tuple[dict, bool]:
    """A family's raw measurement of one model, kept in the cache as JSON with its digest: a
    file that no longer matches its digest (edited, truncated) is named in a warning and
    measured again, never reported as measured."""
    path = cache.cache_root() / "probes" / f"{key['family']}-{cache.content_hash(key)}.json"
    if use_cache and path.is_file():
        problem = None
        try:
            stored = json.loads(path.read_text())
            if isinstance(stored, dict) and set(stored) == {"raw", "sha256"}:
                if stored["sha256"] == _digest(stored["raw"]):
                    return stored["raw"], True
                problem = "its content does not match its digest"
            # else: written before digests were kept: measured again, silently
        except (OSError, ValueError) as exc:
            problem = f"unreadable: {type(exc).__name__}"
        if problem:
            print(f"warning: probe cache file {str(path)!r} is damaged ({problem}): measuring again",
                  file=sys.stderr)
    raw = measure()
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        # measurement order kept; no silent str() of a value JSON cannot hold
        cache.write_json(path, {"raw": raw, "sha256": _digest(raw)}, sort_keys=False, default=None)
    return raw, False


def _digest(raw) -> str:
    return hashlib.sha256(json.dumps(raw, sort_keys=True, allow_nan=True).encode()).hexdigest()


def resolve_oracle(original: "LoadedModel", oracle, second: bool = False) -> tuple["LoadedModel | None", str]:
    """`oracle`: "auto" (the original's twin where it has one; `second`: its twin of the next
    training seed), a LoadedModel, a spec, or None. Returns (LoadedModel or None, reason when None)."""
    if oracle is None:
        return None, "not requested"
    if oracle == "auto":
        spec = original.second_oracle_spec if second else original.oracle_spec
        if spec is None:
            return None, (f"no oracle for {original.spec}: an oracle is the same model trained without "
                          f"the forget set, which exists only for the testbed models")
        oracle = spec
    if isinstance(oracle, str):
        from workbench.models import load

        return load(oracle), ""
    return oracle, ""


def attack_models(edit, model) -> dict:
    """What an attack that trains the edited model should train, built from the clean `model`
    (no edit on it): `{"target": "weights"}` for an edit without hooks (its weights are the
    whole edit), `{"target": "baked", "model": M}` for an edit that exports, and
    `{"target": "hooks", "weights_only": M}` for one that cannot (an input-dependent hook)."""
    interventions = getattr(edit, "interventions", None)
    if not interventions or not hasattr(edit, "baked") or not dataclasses.is_dataclass(edit):
        return {"target": "weights"}
    try:
        return {"target": "baked", "model": edit.baked(model).eval()}
    except WorkbenchInputError as exc:
        weights_only = dataclasses.replace(edit, interventions=[]).baked(model).eval()
        return {"target": "hooks", "weights_only": weights_only, "why": str(exc)}


def probe(original: "LoadedModel", task=None, *, edit: EditLike | None = None, oracle="auto",
          config: ProbeConfig | dict | None = None, trace_sites: "list[Site] | None" = None,
          progress: bool = True, use_cache: bool = True,
          on_step: Callable[[str, str, int, int], None] | None = None, label: str | None = None,
          second_oracle=None) -> ProbeResult:
    """Probe `original` (a LoadedModel), `edit` applied to it (any value with `name`,
    `identity` and `applied(model)`, e.g. a `workbench.edit.Edit`) and the oracle.
    `trace_sites`: the task's concept vectors, ranked, for the traces family; `label` names
    the edit in the result (default: `edit.name`). `second_oracle` ("auto": the oracle twin of
    the next training seed; a LoadedModel; a spec; None) is measured as the role `oracle2`:
    its reference metrics against the oracle are the noise floor (`ProbeResult.table` says so)."""
    if config is None:
        config = ProbeConfig()
    elif isinstance(config, dict):
        config = ProbeConfig.from_options(config)
    if edit is not None and not all(hasattr(edit, a) for a in ("name", "identity", "applied")):
        raise WorkbenchInputError(f"edit {edit!r}: expected an edit (name, identity, applied(model)), "
                                  f"e.g. a workbench.edit.Edit")
    if second_oracle is None and config.noise_floor:
        second_oracle = "auto"
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
    nets = {"original": original, "edited": original, "oracle": oracle_model}
    if second_oracle is not None:
        nets["oracle2"], why2 = (resolve_oracle(original, second_oracle, second=True) if oracle_model is not None
                                 else (None, "needs an oracle to be compared with"))
        if nets["oracle2"] is not None:
            models["oracle2"] = nets["oracle2"].spec
        else:
            missing["oracle2"] = why2
    families = [config.family(n) for n in config.families]
    toks = {r: m.tokenizer for r, m in nets.items() if m is not None}
    raws: dict[str, dict] = {f.name: {} for f in families}
    seconds: dict[str, dict] = {f.name: {} for f in families}
    reused: dict[str, dict] = {f.name: {} for f in families}
    base_fp = model_fingerprint(original.model)
    plan = [r for r in ROLES if r in models]
    for fam in families:
        fam.prepare(ctx)  # before any edit is put on the original
    total = len(plan) * len(families)
    attacked = (attack_models(edit, original.model) if edit is not None and any(f.attacks_baked() for f in families)
                else {})
    bar = tqdm(total=total, desc="probing", disable=not progress)
    done = 0
    for role in plan:
        model = nets[role].model
        scope = edit.applied(original.model) if role == "edited" else contextlib.nullcontext()
        with scope:
            fp = base_fp if role == "original" else model_fingerprint(model)
            identity = fp + (f"+{edit.identity}" if role == "edited" else "")
            for fam in families:
                bar.set_description(f"probing {role}: {fam.name}")
                if on_step is not None:
                    on_step(role, fam.name, done, total)
                t0 = time.perf_counter()

                def measured(net, ident, fam=fam, role=role):
                    key = {**fam.cache_key(ctx), "model": ident, "task": sub.content_hash,
                           "original": base_fp if fam.needs_original else None}
                    return _cached(key, lambda: fam.measure(ctx, net, toks[role]), use_cache)

                if role == "edited" and fam.attacks_baked():
                    target = attacked["target"]
                    net = attacked.get("model", model)
                    raw, hit = measured(net, model_fingerprint(net) if target == "baked" else identity)
                    raw = {**raw, "target": target}
                    if target == "hooks":
                        w = attacked["weights_only"]
                        raw["weights_only"], _ = measured(w, model_fingerprint(w))
                        raw["why"] = attacked["why"]
                    raws[fam.name][role], reused[fam.name][role] = raw, hit
                else:
                    raws[fam.name][role], reused[fam.name][role] = measured(model, identity)
                    if role == "edited" and fam.trains_model:  # the hooked model, as the family asked
                        raws[fam.name][role] = {**raws[fam.name][role], "target": "hooks (requested)"}
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
