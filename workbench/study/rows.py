"""A study store read as rows: one per cell with its headline metrics (and their 95%
intervals), the original's and the oracle's reference rows, the same grouped over seeds, and
the tables the CLI and the report print. The figures and the HTML report are in `report`."""
from __future__ import annotations

import json
import math

from .store import Store

# headline columns: (column, metric, role). forget and retain are held out of every edit
# (`workbench.tasks.declared`): the forget facts in the forms no edit reads, the retain people no
# edit reads; the *_in_sample columns beside them include what an edit trained on.
HEADLINE = (
    ("forget", "behaviour.forget.eval_forms", "edited"),
    ("retain", "behaviour.retain_eval.all", "edited"),
    ("forget_in_sample", "behaviour.forget.all", "edited"),
    ("retain_in_sample", "behaviour.retain.all", "edited"),
    ("neighbour", "behaviour.neighbour.all", "edited"),
    ("forget_quality", "tofu.forget_quality", "edited"),
    ("mia_auc", "muse.auc.mink", "edited"),
    ("latent", "latent.best_layer.forget", "edited"),
    ("relearned", "relearn.forget.final", "edited"),
    ("relearn_gap", "relearn.forget.gap", "edited"),
    ("concept_cos", "traces.concept.cos", "edited"),
    ("concept_jaccard", "traces.concept.jaccard", "edited"),
)
COLUMNS = ("model", "localiser", "operator", "budget", "seed", *[c for c, _, _ in HEADLINE], "seconds", "status")
REFERENCE_ROLES = ("original", "oracle", "oracle2")  # oracle2: with `noise_floor`, the second oracle

def below_floor(store: Store) -> dict[str, str]:
    """{model spec: which floor lines failed} for the study's testbed models below the quality
    floor (recorded by `run_study` in the store's meta)."""
    floors = json.loads(store.meta("quality_floor") or "{}")
    return {m: v["summary"] for m, v in floors.items() if not v["met"]}


def study_rows(store: Store, ids: list[str] | None = None) -> list[dict]:
    """One row per stored cell: coordinates, headline metrics of the edited model, seconds,
    and `below_floor` (the model's failed quality-floor lines, or None)."""
    below = below_floor(store)
    values, bounds = _values(store)
    out = []
    for c in store.cells(ids):
        row = {"cell_id": c["cell_id"], "model": c["model"], "task": c["task"], "localiser": c["localiser"],
               "operator": c["operator"], "budget": c["budget"], "seed": c["seed"], "status": c["status"],
               "error": c["error"], "seconds": c["seconds"], "result": c["result"],
               "localisation": c["localisation"], "edit": c["edit"], "below_floor": below.get(c["model"])}
        _headline(row, c["cell_id"], "edited", values, bounds)
        out.append(row)
    return out


def _values(store: Store) -> tuple[dict, dict]:
    """{(cell, metric, role): value} and {(cell, metric, role): (low, high)} where measured."""
    values, bounds = {}, {}
    for m in store.metrics():
        key = (m["cell_id"], m["metric"], m["role"])
        values[key] = m["value"]
        if m.get("low") is not None and m.get("high") is not None:
            bounds[key] = (m["low"], m["high"])
    return values, bounds


def _headline(row: dict, cell_id: str, role: str, values: dict, bounds: dict) -> None:
    """The headline columns of one role into `row`, each with `<column>_low` and `<column>_high`
    (its 95% interval over people; None where the metric has none)."""
    for col, metric, _ in HEADLINE:
        row[col] = values.get((cell_id, metric, role))
        low, high = bounds.get((cell_id, metric, role), (None, None))
        row[f"{col}_low"], row[f"{col}_high"] = low, high


def reference_rows(store: Store, ids: list[str] | None = None) -> list[dict]:
    """The original's and the oracle's headline values (and the second oracle's, the noise
    floor, in a study probed with `noise_floor = true`), once per (model, task)."""
    cells = store.cells(ids)
    values, bounds = _values(store)
    out, seen = [], set()
    for c in cells:
        if c["status"] != "done" or (c["model"], c["task"]) in seen:
            continue
        seen.add((c["model"], c["task"]))
        for role in REFERENCE_ROLES:
            row = {"model": c["model"], "task": c["task"], "role": role}
            _headline(row, c["cell_id"], role, values, bounds)
            if any(row[col] is not None for col, _, _ in HEADLINE):
                out.append(row)
    return out


def headline_table(rows: list[dict], references: list[dict] | None = None, intervals: bool = False) -> list[dict]:
    """Rows for printing: the references first (per model), then every cell. With `intervals`,
    a value with a 95% interval prints as `value ±half-width` (text, for a terminal)."""
    out = []
    for ref in references or []:
        out.append({**dict.fromkeys(COLUMNS), "model": ref["model"], "localiser": f"[{ref['role']}]",
                    "operator": "", **{c: _pm(ref, c, intervals) for c, _, _ in HEADLINE}, "status": "reference"})
    for r in rows:
        out.append({k: _pm(r, k, intervals) for k in COLUMNS} | ({"forget": "failed"} if r["status"] == "failed" else {})
                   | ({"status": f"{r['status']}, model below floor"} if r.get("below_floor") else {}))
    return out


def _pm(row: dict, col: str, intervals: bool):
    v, lo, hi = row.get(col), row.get(f"{col}_low"), row.get(f"{col}_high")
    if not intervals or not isinstance(v, float) or lo is None or hi is None:
        return v
    return f"{v:.3f}±{(hi - lo) / 2:.3f}"


def seed_summary(rows: list[dict]) -> list[dict]:
    """The finished cells grouped over seeds: one row per (model, task, localiser, operator,
    budget) with `seeds` (how many), and for each headline column its mean over the seeds and
    `<column>_sd` (the sample standard deviation; None with one seed). A study's seeds vary the
    operator's and localiser's seed and the probes' fact subsample, so the spread is what
    another run of the same cell would move by."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["status"] == "done":
            groups.setdefault((r["model"], r["task"], r["localiser"], r["operator"], r["budget"]), []).append(r)
    out = []
    for (model, task, loc, op, budget), members in groups.items():
        row = {"model": model, "task": task, "localiser": loc, "operator": op, "budget": budget,
               "seeds": len(members)}
        for col, _, _ in HEADLINE:
            xs = [m[col] for m in members if isinstance(m.get(col), (int, float)) and math.isfinite(m[col])]
            row[col] = sum(xs) / len(xs) if xs else None
            row[f"{col}_sd"] = (math.sqrt(sum((x - row[col]) ** 2 for x in xs) / (len(xs) - 1))
                                if len(xs) > 1 else None)
        out.append(row)
    return out


def seed_table(summary: list[dict]) -> list[dict]:
    """`seed_summary` rows for printing: `mean ±sd` text where there are several seeds."""
    out = []
    for r in summary:
        row = {k: r[k] for k in ("model", "localiser", "operator", "budget", "seeds")}
        for col, _, _ in HEADLINE:
            v, sd = r[col], r[f"{col}_sd"]
            row[col] = v if sd is None or v is None else f"{v:.3f}±{sd:.3f}"
        out.append(row)
    return out


def floor_warnings(rows: list[dict]) -> list[str]:
    """One line per model of `rows` that is below the testbed quality floor."""
    below = {r["model"]: r["below_floor"] for r in rows if r.get("below_floor")}
    return [f"{m} is below the testbed quality floor ({why}): read its cells with care"
            for m, why in below.items()]
