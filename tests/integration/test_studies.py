"""Studies on the small testbed world: run, store, resume after SIGKILL, Ray, report, export."""
from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workbench import cache
from workbench.study import Store, parse_study, run_study, write_report

pytestmark = pytest.mark.integration

SMALL = "testbed:dense?people=40&attributes=3&steps=600"
TINY = f"""
name = "tiny"
seeds = [0, 1]
budgets = [0.05]
threads = 1

[[model]]
spec = "{SMALL}"

[[localiser]]
method = "wagle"

[[localiser]]
method = "concept"

[[operator]]
name = "graddiff"
localisers = ["none", "wagle"]
options = {{ steps = 6 }}

[[operator]]
name = "ablate"
localisers = ["concept"]

[probes]
families = ["behaviour", "tofu", "traces", "relearn"]
options = {{ max_facts = 10, relearn = {{ steps = 3 }}, behaviour = {{ samples = 1 }} }}
"""


def _fresh_cache(root: Path) -> Path:
    """An empty cache that shares only the trained models (so every cell is computed anew)."""
    root.mkdir(parents=True)
    (root / "models").symlink_to(cache.cache_root() / "models", target_is_directory=True)
    return root


@contextlib.contextmanager
def _cache_env(root: Path):
    old = os.environ.get("WORKBENCH_CACHE")
    os.environ["WORKBENCH_CACHE"] = str(root)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("WORKBENCH_CACHE")
        else:
            os.environ["WORKBENCH_CACHE"] = old


def _rows(store_path: Path) -> dict:
    """{cell_id: (status, {(metric, role): value})} and a duplicate check."""
    conn = sqlite3.connect(store_path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    ids = [r[0] for r in conn.execute("SELECT cell_id FROM cells")]
    assert len(ids) == len(set(ids)), "a cell appears twice"
    out = {}
    for cid, status in conn.execute("SELECT cell_id, status FROM cells"):
        vals = {(m, r): v for m, r, v in conn.execute("SELECT metric, role, value FROM metrics WHERE cell_id = ?", (cid,))}
        out[cid] = (status, vals)
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, small_dense, small_dense_oracle):
    d = tmp_path_factory.mktemp("tiny")
    (d / "tiny.toml").write_text(TINY)
    return d / "tiny.toml"


@pytest.fixture(scope="module")
def reference(tiny, tmp_path_factory):
    """The tiny study run once, uninterrupted, locally, on a fresh cache."""
    from workbench.study import load_study

    root = _fresh_cache(tmp_path_factory.mktemp("ref") / "cache")
    with _cache_env(root):
        return run_study(load_study(tiny), out=root.parent / "run", progress=False)


def test_every_cell_is_stored_with_three_roles(reference):
    rows = _rows(reference.store_path)
    assert len(rows) == len(reference.cells) == 6 and not reference.failed
    for status, vals in rows.values():
        assert status == "done"
        for role in ("original", "edited", "oracle"):
            assert vals[("behaviour.forget.all", role)] is not None
    with Store(reference.store_path) as store:
        cells = {c["cell_id"]: c for c in store.cells()}
        # the localised fine-tune touches 5% of the scored weights; the unmasked one all of them
        masked = [c for c in cells.values() if c["localiser"] == "wagle"]
        whole = [c for c in cells.values() if c["localiser"] == "none"]
        assert all(0 < c["changed_weights"] < 0.1 * w["changed_weights"] for c in masked for w in whole)
        assert all(c["changed_weights"] == 0 for c in cells.values() if c["localiser"] == "concept")  # hooks only
        # the original and the oracle are measured once per fact subsample (a study seed draws its
        # own) and read from the cache afterwards: one value per seed
        per_seed: dict = {}
        for i, c in cells.items():
            per_seed.setdefault(c["seed"], set()).add(store.value(i, "behaviour.forget.all", "original"))
        assert sorted(per_seed) == [0, 1] and all(len(v) == 1 for v in per_seed.values()), per_seed
        orig = store.value(next(iter(cells)), "behaviour.forget.all", "original")
        oracle = store.value(next(iter(cells)), "behaviour.forget.all", "oracle")
        assert orig > 0.7 and oracle < 0.3
        assert len(store.curves("relearn.forget.final")) == 6 * 3  # a curve per cell and role


def test_rerun_computes_nothing(reference):
    from workbench.study import load_study

    t0 = time.perf_counter()
    again = run_study(load_study(reference.study.source), out=reference.out, progress=False)
    assert again.ran == [] and len(again.skipped) == 6
    assert time.perf_counter() - t0 < 5
    assert _rows(reference.store_path) == _rows(reference.store_path)


# The kill points below are drawn from this seed (printed on failure): set WORKBENCH_KILL_SEED to try others.
KILL_SEED = int(os.environ.get("WORKBENCH_KILL_SEED", "0"))

# `python -c _KILLED KIND N ARGS...` runs `workbench ARGS...` and kills itself with SIGKILL at the
# N-th `store` transaction that writes a cell (after all its rows, before the commit) or inside the
# N-th `cache` build (its files written, before the COMPLETE marker): nothing is mocked but the moment.
_KILLED = r"""
import os, signal, sys
kind, n = sys.argv[1], int(sys.argv[2])
count = [0]

def reached():
    count[0] += 1
    if count[0] == n:
        os.kill(os.getpid(), signal.SIGKILL)

if kind == "store":
    from workbench.study import store

    class Conn:
        def __init__(self, conn):
            self._conn = conn
        def __getattr__(self, name):
            return getattr(self._conn, name)
        def executemany(self, sql, rows):
            out = self._conn.executemany(sql, rows)
            if sql.startswith("INSERT INTO curves"):  # the cell's last statement inside its transaction
                reached()
            return out

    init = store.Store.__init__
    def opened(self, path):
        init(self, path)
        self.conn = Conn(self.conn)
    store.Store.__init__ = opened
elif kind == "cache":
    from workbench import cache
    manifest = cache.manifest
    def built(entry):
        reached()
        return manifest(entry)
    cache.manifest = built
from workbench.cli import main
sys.argv = ["workbench", *sys.argv[3:]]
main()
"""


def _entries_whole(root: Path) -> None:
    """Every cache entry a killed run left visible is complete (a half-built one is a .tmp- directory)."""
    for kind in root.iterdir():
        if kind.is_dir() and not kind.is_symlink():
            for e in kind.iterdir():
                if e.is_dir() and not e.name.startswith(".tmp-"):
                    assert cache.is_complete(e) and cache.damage(e) is None, e


@pytest.mark.slow
def test_killed_inside_a_cache_build_a_store_transaction_and_at_a_random_moment_then_resume(tiny, reference, tmp_path):
    """SIGKILL a running study (CLI) inside a cache build, then inside the transaction that stores
    a cell, then from outside at a random moment; resume with the process-pool executor and kill
    its workers while cells are in flight. The store ends equal to the uninterrupted run's."""
    rng = random.Random(KILL_SEED)
    seed = f"(WORKBENCH_KILL_SEED={KILL_SEED})"
    root = _fresh_cache(tmp_path / "cache")
    out = tmp_path / "run"
    store_path = out / "study.sqlite"
    env = {**os.environ, "WORKBENCH_CACHE": str(root)}
    args = ["study", "run", str(tiny), "--out", str(out), "--no-report"]

    def stored() -> dict:
        return _rows(store_path) if store_path.is_file() else {}

    # 1. inside the n-th cache build: no entry is left half-written where it would be read
    n = rng.randint(1, 4)
    r = subprocess.run([sys.executable, "-c", _KILLED, "cache", str(n), *args], env=env, capture_output=True, text=True)
    assert r.returncode == -signal.SIGKILL, f"{seed} cache build {n} was never reached: {r.stderr[-2000:]}"
    assert list(root.glob("*/.tmp-*")), f"{seed} the killed build left no temporary directory"
    _entries_whole(root)
    before = stored()

    # 2. inside the transaction of the n-th cell this run stores: the cell is not in the store
    n = rng.randint(1, 2)
    r = subprocess.run([sys.executable, "-c", _KILLED, "store", str(n), *args], env=env, capture_output=True, text=True)
    assert r.returncode == -signal.SIGKILL, f"{seed} store write {n} was never reached: {r.stderr[-2000:]}"
    after = stored()  # the integrity check passes (the hot journal is rolled back)
    assert len(after) == len(before) + n - 1, f"{seed} {len(before)} cells, then {len(after)}"
    for status, vals in after.values():  # no partial row: every stored cell has all its metrics
        assert status == "done" and ("behaviour.forget.all", "edited") in vals

    # 3. from outside, at a random moment after one more cell
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and len(stored()) < len(after) + 1:
        time.sleep(0.2)
    time.sleep(rng.uniform(0, 2.0))  # somewhere inside the next cell
    assert proc.poll() is None, f"{seed} the study ended before the kill: {proc.stderr.read().decode()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = stored()
    assert len(after) < len(killed) < 6, f"{seed} {len(killed)} cells"
    _entries_whole(root)

    # 4. resume on two worker processes, and kill both while cells are still to come
    import multiprocessing

    from workbench.study import load_study

    def kill_workers(row, done, total):
        if done < total and not kill_workers.done:
            kill_workers.done = True
            for p in multiprocessing.active_children():
                os.kill(p.pid, signal.SIGKILL)
    kill_workers.done = False
    with _cache_env(root):
        resumed = run_study(load_study(tiny), out=out, executor="process", workers=2, progress=False,
                            on_cell=kill_workers)
    assert len(resumed.skipped) == len(killed) and not resumed.failed, seed
    assert len(resumed.ran) == 6 - len(killed), seed  # each stored once, the rerun ones too
    if 6 - len(killed) >= 2:  # a cell was in flight when the workers died: it ran again in a fresh pool
        assert resumed.rerun, seed
    assert _rows(store_path) == _rows(reference.store_path), seed


def _kill_a_ray_task(rng: random.Random, killed: list, timeout: float = 300) -> None:
    """Watch for a Ray worker running a cell (its process title is `ray::run_cell`) and SIGKILL it
    after a moment drawn from `rng`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if title.startswith(b"ray::run_cell"):
                time.sleep(rng.uniform(0.5, 3.0))
                try:
                    if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::run_cell"):
                        os.kill(int(pid), signal.SIGKILL)
                        killed.append(int(pid))
                        return
                except OSError:
                    pass
        time.sleep(0.1)


@pytest.mark.slow
def test_ray_executor_matches_local_when_a_worker_is_killed(tiny, reference, tmp_path):
    pytest.importorskip("ray")
    import threading

    from workbench.study import load_study

    study = load_study(tiny)
    root = _fresh_cache(tmp_path / "cache")
    killed: list = []
    watcher = threading.Thread(target=_kill_a_ray_task, args=(random.Random(KILL_SEED), killed), daemon=True)
    watcher.start()
    with _cache_env(root):
        run = run_study(study, out=tmp_path / "run", executor="ray", progress=False)
    watcher.join(timeout=1)
    assert killed, "no Ray worker was seen running a cell"
    assert len(run.ran) == 6 and not run.failed  # Ray ran the killed worker's cell again
    with Store(run.store_path) as store:
        assert {c["executor"] for c in store.cells()} == {"ray"}
    assert _rows(run.store_path) == _rows(reference.store_path)


def test_report_and_export(tiny, reference, tmp_path):
    path = write_report(reference.store_path, tmp_path / "r.html")
    text = path.read_text()
    for key in ("pareto", "relearning", "traces", "agreement"):
        assert f'id="fig-{key}"' in text
    assert text.count("plotly.js v") <= 2 and "<table id='cells'" in text  # plotly inlined once: self-contained
    assert "src=\"http" not in text and len(text) > 1_000_000

    from workbench.study.report import figure_pareto, reference_rows, study_agreement, study_rows

    with Store(reference.store_path) as store:
        rows, refs = study_rows(store), reference_rows(store)
        matrix = study_agreement(store)
    fig = figure_pareto(rows, refs)
    assert sum(len(t.x) for t in fig.data if t.mode == "markers") == 6  # one marker per cell
    assert {t.name for t in fig.data} >= {"original", "oracle"}
    # every cell's forget and retain accuracy carries its 95% interval, drawn as error bars
    assert all(r["forget_low"] <= r["forget"] <= r["forget_high"] for r in rows)
    assert all(t.error_y.array is not None for t in fig.data if t.mode == "markers")
    # two seeds per cell: the report and the CLI aggregate over them
    from workbench.study.report import seed_summary

    summary = seed_summary(rows)
    assert len(summary) == 3 and {s["seeds"] for s in summary} == {2}
    assert "Over seeds: mean and standard deviation" in text
    assert matrix[SMALL]["names"] == ["wagle", "concept"]

    env = {**os.environ}
    for fmt in ("csv", "parquet"):
        f = tmp_path / f"cells.{fmt}"
        r = subprocess.run([sys.executable, "-m", "workbench.cli", "study", "export", str(reference.out),
                            "--file", str(f)], capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
        import pandas as pd

        frame = pd.read_csv(f) if fmt == "csv" else pd.read_parquet(f)
        assert len(frame) == 6 and "behaviour.forget.all[edited]" in frame.columns
    r = subprocess.run([sys.executable, "-m", "workbench.cli", "study", "status", str(reference.out)],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "6 done" in r.stdout, r.stdout + r.stderr
    r = subprocess.run([sys.executable, "-m", "workbench.cli", "study", "run", str(tiny), "--out", str(reference.out),
                        "--no-report"], capture_output=True, text=True)
    assert r.returncode == 0 and "6 cells, 0 run now, 6 already" in r.stdout, r.stdout + r.stderr  # from the store
    assert "half the 95% bootstrap interval over people" in r.stdout
    over_seeds = r.stdout.split("over seeds")[1]
    assert over_seeds.count("±") >= 3, r.stdout  # the forget column of the three cells: mean ±sd


def test_a_failing_cell_is_recorded_and_the_study_goes_on(small_dense, tmp_path):
    study = parse_study({
        "name": "failing", "model": [{"spec": SMALL}],
        "operator": [{"name": "directional", "options": {"layer": 99}},
                     {"name": "ga", "options": {"steps": 1}}],
        "probes": {"families": ["behaviour"], "options": {"max_facts": 5}}})
    run = run_study(study, out=tmp_path, progress=False)
    assert len(run.failed) == 1 and len(run.ran) == 2
    with Store(run.store_path) as store:
        failed = [c for c in store.cells() if c["status"] == "failed"]
        assert "layer=99" in failed[0]["error"] and not store.metrics(failed[0]["cell_id"])
    html = write_report(run.store_path).read_text()
    assert "Failed cells" in html and "layer=99" in html
    # the CLI stores the same, prints its table, and exits 1: a script sees the study is incomplete
    (tmp_path / "failing.toml").write_text(f"""name = "failing"
[[model]]
spec = "{SMALL}"
[[operator]]
name = "directional"
options = {{ layer = 99 }}
[[operator]]
name = "ga"
options = {{ steps = 1 }}
[probes]
families = ["behaviour"]
options = {{ max_facts = 5 }}
""")
    exe = Path(sys.executable).with_name("workbench")
    r = subprocess.run([str(exe), "study", "run", str(tmp_path / "failing.toml"), "--out", str(tmp_path / "cli")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 1 and "error: 1 of 2 cells failed" in r.stderr, r.stdout[-2000:] + r.stderr[-2000:]
    assert "Traceback" not in r.stderr and (tmp_path / "cli" / "report.html").is_file()


UNDER_TRAINED = "testbed:dense?people=40&attributes=3&steps=40"  # deliberately below the quality floor


def test_a_model_below_the_quality_floor_is_marked_not_hidden(tmp_path):
    from workbench.models.knowledge import floor_verdict
    from workbench.study.report import study_rows

    verdict = floor_verdict(UNDER_TRAINED)
    assert not verdict.met and verdict.failed  # 40 steps cannot learn the facts
    study = parse_study({
        "name": "under", "model": [{"spec": UNDER_TRAINED}, {"spec": SMALL}],
        "operator": [{"name": "ga", "options": {"steps": 1}}],
        "probes": {"families": ["behaviour"], "options": {"max_facts": 5}}})
    run = run_study(study, out=tmp_path, progress=False)
    assert not run.failed and len(run.ran) == 2  # the cell runs: it is marked, not refused
    with Store(run.store_path) as store:
        floors = json.loads(store.meta("quality_floor"))
        rows = {r["model"]: r for r in study_rows(store)}
    assert floors[UNDER_TRAINED]["met"] is False
    assert floors[UNDER_TRAINED]["summary"] == verdict.summary()
    assert rows[UNDER_TRAINED]["below_floor"] == verdict.summary()
    # the small world's mark follows its own measured verdict
    assert (rows[SMALL]["below_floor"] is None) == floor_verdict(SMALL).met
    html = write_report(run.store_path).read_text()
    assert f"{UNDER_TRAINED} is below the testbed quality floor".replace("&", "&amp;") in html
    r = subprocess.run([sys.executable, "-m", "workbench.cli", "study", "report", str(run.out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"warning: {UNDER_TRAINED} is below the testbed quality floor" in r.stdout
    assert "done, model below floor" in r.stdout


def test_a_study_with_the_noise_floor_stores_the_second_oracle(small_dense, small_dense_oracle_seed1, tmp_path,
                                                                capsys):
    """`noise_floor = true` in a study's probe options: every cell is probed next to the second
    oracle too, the store holds its reference row, and the CLI table and report say what it is."""
    from probes.result import NOISE_FLOOR
    from workbench.cli.study import print_headline
    from workbench.study.config import StudyError
    from workbench.study.report import reference_rows

    study = parse_study({
        "name": "floor", "model": [{"spec": SMALL}],
        "operator": [{"name": "ga", "options": {"steps": 2}}],
        "probes": {"families": ["behaviour", "muse"], "options": {"max_facts": 10, "noise_floor": True}}})
    run = run_study(study, out=tmp_path, progress=False)
    assert not run.failed and len(run.ran) == 1
    with Store(run.store_path) as store:
        refs = {r["role"]: r for r in reference_rows(store)}
        cell = store.cells()[0]["cell_id"]
        assert set(refs) == {"original", "oracle", "oracle2"}
        # the floor is measured, with its interval: PrivLeak of one oracle against the other
        assert store.value(cell, "muse.privleak", "oracle2") is not None
        assert refs["oracle2"]["mia_auc_low"] <= refs["oracle2"]["mia_auc"] <= refs["oracle2"]["mia_auc_high"]
    assert NOISE_FLOOR in write_report(run.store_path).read_text()
    print_headline(run.store_path)  # what `workbench study run` / `study report` print
    out = capsys.readouterr().out
    assert "[oracle2]" in out and NOISE_FLOOR in out, out
    # an option that is not a boolean is refused with the option named
    with pytest.raises(StudyError, match="noise_floor"):
        parse_study({"name": "x", "model": [{"spec": SMALL}], "operator": [{"name": "ga"}],
                     "probes": {"options": {"noise_floor": "maybe"}}})
