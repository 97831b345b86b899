"""Run a study: expand it into cells, run each (localise -> edit -> probe) and store the rows.

Every artifact is content-addressed in the cache (localisations, edits, probe measurements),
so a cell that was cut short reuses what it had finished, and the store holds only whole
cells: rerunning a killed study recomputes nothing that finished and writes no row twice.

Executors (same cells, same numbers for the same `threads`):
- `local`: one cell after another in this process (models stay loaded);
- `process`: a pool of `workers` processes (spawned), each with its own loaded models;
- `ray`: Ray tasks (`pip install 'unlearning-workbench[ray]'`), on a local Ray instance or a cluster
  (`address`). Each task asks for `threads` CPUs.
The parent process is the only writer to the SQLite store.

A worker process that dies (killed, out of memory) takes the cells it was running with it:
the `process` executor starts a fresh pool for the cells it had not returned, and Ray
retries a task whose worker died once (`max_retries=1`). A cell whose worker dies twice is
stored as failed, naming that, and the study goes on (rerun it to retry).
"""
from __future__ import annotations

import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import WorkbenchInputError
from ..pipeline import Pipeline
from .config import Cell, Study
from .store import Store

EXECUTORS = ("local", "process", "ray")
_PIPELINE: Pipeline | None = None  # this process's pipeline (its models stay loaded)


def default_out(study: Study) -> Path:
    """Where a study's store, artifacts and report go unless told otherwise."""
    return Path(os.environ.get("WORKBENCH_RUNS", "runs")) / study.name


def _pipeline() -> Pipeline:
    global _PIPELINE
    if _PIPELINE is None:
        _PIPELINE = Pipeline(progress=False)
    return _PIPELINE


def run_cell(payload: dict) -> dict:
    """Run one cell in this process and return its store row. A failure inside the cell is
    caught and returned as a `failed` row naming the error; nothing is raised."""
    import torch

    if payload.get("cache_root"):
        os.environ["WORKBENCH_CACHE"] = payload["cache_root"]
    torch.set_num_threads(payload["threads"])
    cell = payload["cell"]
    row = _coordinates(payload)
    t0 = time.perf_counter()
    try:
        row.update(_run(cell, payload["id"], Path(payload["out"])))
        row["status"] = "done"
    except Exception as exc:  # a cell's failure is data: the study goes on
        row.update(status="failed", error=f"{type(exc).__name__}: {exc}",
                   traceback=traceback.format_exc(limit=8))
    row["seconds"] = round(time.perf_counter() - t0, 2)
    return row


def _coordinates(payload: dict) -> dict:
    """The store row's coordinates of the cell a payload carries (no results)."""
    cell = payload["cell"]
    return {"cell_id": payload["id"], **{k: cell[k] for k in (
        "study", "model", "task", "localiser", "localiser_method", "localiser_options", "operator",
        "operator_name", "operator_options", "budget", "seed")},
        "threads": payload["threads"], "executor": payload["executor"]}


def _run(cell: dict, cell_id: str, out: Path) -> dict:
    localiser = (cell["localiser_method"], cell["localiser_options"]) if cell["localiser_method"] else None
    ran = _pipeline().run(cell["model"], cell["task"], localiser, (cell["operator_name"], cell["operator_options"]),
                          cell["probes"], label=cell["operator"])
    result_path = ran.result.save(out / "cells" / f"{cell_id}.json")
    return {
        "localisation": str(ran.localised.path) if ran.localised else None, "edit": str(ran.edited.path),
        "result": str(result_path), "localise_seconds": round(ran.seconds["localise"], 2),
        "edit_seconds": round(ran.seconds["edit"], 2), "probe_seconds": round(ran.seconds["probe"], 2),
        "changed_weights": _changed_scalars(ran.loaded.model, ran.edited.edit),
        **result_rows(ran.result),
    }


def result_rows(result) -> dict:
    """A ProbeResult as the store's metric and curve rows."""
    return {"metrics": result.records(),
            "curves": [{"metric": m.name, "role": r, "points": pts} for m in result.metrics for r, pts in m.curves.items()]}


def store_probe(result, model: str, task: str, edit: dict | None, study: str = "app") -> Path:
    """Write an interactive probe (the app's) into the study store `runs/<study>` as one cell,
    so the Studies page, the report and the notebooks see it next to scripted studies."""
    from .. import cache

    out = Path(os.environ.get("WORKBENCH_RUNS", "runs")) / study
    e = edit or {}
    coords = {"model": model, "task": task, "localiser": e.get("localiser", "none"),
              "operator": e.get("operator", "none"), "edit": e.get("path"), "probes": result.config}
    cell_id = cache.content_hash(coords)
    path = result.save(out / "cells" / f"{cell_id}.json")
    row = {"cell_id": cell_id, "study": study, "model": model, "task": task, "localiser": coords["localiser"],
           "localiser_method": None, "localiser_options": {}, "operator": coords["operator"],
           "operator_name": coords["operator"], "operator_options": {}, "budget": None, "seed": 0,
           "status": "done", "executor": "app", "edit": e.get("path"), "result": str(path),
           **result_rows(result)}
    with Store(out / "study.sqlite") as store:
        store.set_meta("name", study)
        store.write(row)
    return out / "study.sqlite"


def _changed_scalars(model, edit) -> int:
    """How many scalar weights the edit changes (not whole tensors)."""
    return int(sum((t != model.get_parameter(n).detach()).sum() for n, t in edit.weights.items()))


@dataclass
class StudyRun:
    study: Study
    out: Path
    cells: list[Cell]
    ran: list[str]  # ids run now
    skipped: list[str]  # ids already in the store
    failed: list[str]
    seconds: float
    rerun: list[str] = field(default_factory=list)  # ids run again after their worker process died

    @property
    def store_path(self) -> Path:
        return self.out / "study.sqlite"


def plan(study: Study, out: Path | None = None, retry_failed: bool = True) -> tuple[list[Cell], list[Cell]]:
    """(every cell, the cells still to run) against the store in `out`."""
    out = Path(out) if out is not None else default_out(study)
    cells = study.cells()
    path = out / "study.sqlite"
    done = {}
    if path.is_file():
        with Store(path) as store:
            done = store.status()
    todo = [c for c in cells if done.get(c.id) != "done" and (retry_failed or c.id not in done)]
    return cells, todo


def resolve_threads(study: Study, executor: str, workers: int) -> int:
    from ..cores import cores as _cores

    cores = _cores()
    if study.threads:
        return study.threads
    return cores if executor in ("local", "ray") else max(1, cores // max(1, workers))


def run_study(study: Study, out: str | Path | None = None, executor: str = "local", workers: int = 1,
              progress: bool = True, retry_failed: bool = True, address: str | None = None,
              on_cell: Callable[[dict, int, int], None] | None = None) -> StudyRun:
    """Run every cell of `study` not yet in the store at `out` (default `runs/<name>`).
    `on_cell(row, done, total)` is called after each stored cell."""
    import json

    from workbench.progress import tqdm

    if executor not in EXECUTORS:
        raise WorkbenchInputError(f"executor {executor!r}: expected one of {', '.join(EXECUTORS)}")
    if workers < 1:
        raise WorkbenchInputError(f"workers={workers}: expected an integer >= 1")
    t0 = time.time()
    out = Path(out) if out is not None else default_out(study)
    out.mkdir(parents=True, exist_ok=True)
    cells, todo = plan(study, out, retry_failed)
    ids = {c.id for c in todo}
    threads = resolve_threads(study, executor, workers)
    _prepare_models(todo, progress)
    from .. import cache

    payloads = [{"cell": c.to_dict(), "id": c.id, "out": str(out.resolve()), "threads": threads,
                 "executor": executor, "cache_root": str(cache.cache_root().resolve())} for c in todo]
    ran, failed = [], []
    with Store(out / "study.sqlite") as store:
        store.set_meta("study", json.dumps(study.to_dict(), sort_keys=True))
        store.set_meta("name", study.name)
        for model, verdict in check_floors([c.model for c in cells], store).items():
            if not verdict["met"] and progress:
                tqdm.write(f"warning: {model} is below the testbed quality floor ({verdict['summary']}); "
                           f"its cells run but are marked in the store and the report")
        bar = tqdm(total=len(cells), initial=len(cells) - len(todo), desc=f"study {study.name}",
                   disable=not progress, unit="cell")

        def stored(row: dict) -> None:
            store.write(row)
            ran.append(row["cell_id"])
            if row["status"] == "failed":
                failed.append(row["cell_id"])
                bar.write(f"cell failed: {row['error']}")
            bar.update(1)
            if on_cell is not None:
                on_cell(row, bar.n, len(cells))

        rerun = _EXECUTE[executor](payloads, stored, bar, workers=workers, threads=threads, address=address)
        bar.close()
    skipped = [c.id for c in cells if c.id not in ids]
    return StudyRun(study, out, cells, ran, skipped, failed, time.time() - t0, rerun)


def check_floors(models: list[str], store: Store) -> dict[str, dict]:
    """The quality-floor verdict of every testbed model among `models` (measured once per
    trained pair, then cached), recorded in the store's meta `quality_floor` as
    {model spec: {met, summary, rows}} so the report and the app mark a below-floor model's cells."""
    import json

    from ..models import parse_kind
    from ..models.knowledge import floor_verdict

    floors = json.loads(store.meta("quality_floor") or "{}")
    for model in dict.fromkeys(models):
        if parse_kind(model) == "testbed":
            v = floor_verdict(model)
            floors[model] = {**v.to_dict(), "summary": v.summary()}
    store.set_meta("quality_floor", json.dumps(floors, sort_keys=True))
    return floors


def _prepare_models(cells: list[Cell], progress: bool) -> None:
    """Train (or find) every testbed model and oracle the cells need, before any cell runs,
    two at a time (`testbed.prepare_many`)."""
    prepare_testbeds([c.model for c in cells], progress)


def prepare_testbeds(specs: list[str], progress: bool = True) -> list:
    """The testbed specs among `specs` with their oracle twins, trained where missing.
    Returns the TestbedSpecs (full models before their twins)."""
    from ..models import parse_kind
    from ..models import testbed

    out = []
    for spec in dict.fromkeys(specs):
        if parse_kind(spec) == "testbed":
            tb = testbed.TestbedSpec.parse(spec)
            out += [tb] if tb.oracle else [tb, tb.twin()]
    testbed.prepare_many(out, progress)
    return out


def _local(payloads, stored, bar, **_):
    for p in payloads:
        bar.set_postfix_str(_short(p))
        stored(run_cell(p))
    return []


WORKER_LIVES = 2  # times a cell may lose its worker process before it is stored as failed


def _lost(payload: dict, why: str) -> dict:
    """The failed row of a cell whose worker process died under it `WORKER_LIVES` times."""
    return {**_coordinates(payload), "status": "failed",
            "error": f"WorkerDied: {why} (rerun the study to retry the cell)"}


def _process(payloads, stored, bar, workers: int, **_):
    """A pool of spawned processes. When a worker dies the pool is broken and every cell it
    had not returned is lost: those run again in a fresh pool, at most `WORKER_LIVES` times."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    lives = {p["id"]: WORKER_LIVES for p in payloads}
    todo, rerun = list(payloads), []
    while todo:
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
        lost = []
        try:
            futures = {pool.submit(run_cell, p): p for p in todo}
            for f in as_completed(futures):
                try:
                    row = f.result()
                except BrokenProcessPool:
                    lost.append(futures[f])
                    continue
                stored(row)
        except BaseException:  # interrupted (Ctrl-C, SIGTERM): stop the workers now, not after their cells
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.kill()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        todo = []
        for p in lost:
            lives[p["id"]] -= 1
            if lives[p["id"]] > 0:
                todo.append(p)
            else:
                stored(_lost(p, f"its worker process died {WORKER_LIVES} times while it ran"))
        if todo:
            bar.write(f"a worker process died: {len(todo)} cell(s) it had not returned run again in a fresh pool")
            rerun += [p["id"] for p in todo]
    return rerun


def _ray(payloads, stored, bar, threads: int, address: str | None = None, **_):
    try:
        import ray
    except ImportError:
        raise WorkbenchInputError("executor 'ray' needs Ray: pip install 'unlearning-workbench[ray]' (or pip install ray)") from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        # a task whose worker dies is run again by Ray, `WORKER_LIVES - 1` times (run_cell never raises)
        remote = ray.remote(num_cpus=threads, max_retries=WORKER_LIVES - 1)(run_cell)
        pending = {remote.remote(p): p for p in payloads}
        while pending:  # (Ray does not say which tasks it retried: nothing is reported as rerun)
            done, _ = ray.wait(list(pending), num_returns=1)
            payload = pending.pop(done[0])
            try:
                row = ray.get(done[0])
            except ray.exceptions.RayError as exc:  # the worker (or its node) died every time
                row = _lost(payload, f"its Ray worker died {WORKER_LIVES} times while it ran ({type(exc).__name__})")
            stored(row)
    finally:
        if started:
            ray.shutdown()
    return []


_EXECUTE = {"local": _local, "process": _process, "ray": _ray}


def _short(payload: dict) -> str:
    c = payload["cell"]
    return f"{c['model']} {c['localiser']}->{c['operator']}"
