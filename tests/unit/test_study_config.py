"""Study files, cells and the SQLite store (no model is loaded)."""
from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from workbench.study import Store, StudyError, load_study, parse_study
from workbench.study.report import pareto_front

pytestmark = pytest.mark.unit

SMALL = "testbed:dense?people=40&attributes=3&steps=600"


def base(**over) -> dict:
    d = {"name": "t", "model": [{"spec": SMALL}],
         "localiser": [{"method": "wagle"}, {"method": "concept"}],
         "operator": [{"name": "ablate", "localisers": ["concept"]},
                      {"name": "graddiff", "localisers": ["none", "wagle"], "options": {"steps": 5}}],
         "probes": {"families": ["behaviour"], "options": {"max_facts": 10}}}
    d.update(over)
    return d


def test_bundled_studies_expand_to_unique_cells():
    from workbench.study.config import BUNDLED

    for name in BUNDLED:
        study = load_study(name)
        ids = [c.id for c in study.cells()]
        assert ids and len(ids) == len(set(ids))
    # WAGLE at its authors' budgets, next to the small ones
    assert {c.budget for c in load_study("wagle").cells() if c.localiser == "wagle"} == {0.01, 0.05, 0.5, 0.95}


def test_a_localiser_may_have_its_own_budgets():
    d = base(budgets=[0.05])
    d["localiser"][0]["budgets"] = [0.5, 0.95]
    cells = parse_study(d).cells()
    assert {c.budget for c in cells if c.localiser == "wagle"} == {0.5, 0.95}
    assert {c.budget for c in cells if c.localiser == "concept"} == {0.05}  # the study's
    d["localiser"][0]["budgets"] = [1.5]
    with pytest.raises(StudyError, match=r"localiser\[0\]\.budgets.*1\.5 is not a fraction"):
        parse_study(d)
    default = load_study("default")
    methods = {c.localiser_method for c in default.cells()} - {None}
    from workbench.localise import LOCALISERS
    # the default study uses every localiser family: concept, circuits, weights, SAE, experts
    assert {"concept", "circuits", "wagle", "salun", "sae", "experts"} <= methods <= set(LOCALISERS.names())
    assert {c.model for c in default.cells()} == {"testbed:dense", "testbed:moe"}
    assert "relearn" in default.probes["families"]


def test_grid_expansion_counts_seeds_budgets_and_pairs():
    study = parse_study(base(seeds=[0, 1], budgets=[0.01, 0.05]))
    cells = study.cells()
    # ablate x concept x 2 budgets x 2 seeds + graddiff x (none x 2 seeds + wagle x 2 budgets x 2 seeds)
    assert len(cells) == 4 + 2 + 4
    none = [c for c in cells if c.localiser == "none"]
    assert all(c.budget is None and "fraction" not in c.operator_options for c in none)
    wagle = [c for c in cells if c.localiser == "wagle"]
    assert {c.operator_options["fraction"] for c in wagle} == {0.01, 0.05}
    assert {c.operator_options["seed"] for c in wagle} == {0, 1}
    assert {c.localiser_options["seed"] for c in wagle} == {0, 1}


def test_default_pairing_follows_site_kinds():
    study = parse_study(base(operator=[{"name": "ablate"}, {"name": "sae-clamp"}],
                             localiser=[{"method": "concept"}, {"method": "sae"}, {"method": "wagle"}]))
    pairs = {(c.localiser, c.operator) for c in study.cells()}
    assert pairs == {("concept", "ablate"), ("wagle", "ablate"), ("sae", "sae-clamp")}


def test_cell_id_is_a_content_hash_of_what_determines_the_numbers():
    a = parse_study(base()).cells()
    b = parse_study(base(name="other", localiser=[{"method": "wagle", "label": "W"}, {"method": "concept"}],
                         operator=[{"name": "ablate", "localisers": ["concept"], "label": "abl"},
                                   {"name": "graddiff", "localisers": ["none", "W"], "options": {"steps": 5}}])).cells()
    assert sorted(c.id for c in a) == sorted(c.id for c in b)  # labels and names do not count
    c = parse_study(base(operator=[{"name": "ablate", "localisers": ["concept"]},
                                   {"name": "graddiff", "localisers": ["none", "wagle"], "options": {"steps": 6}}]))
    assert len(set(x.id for x in c.cells()) & set(x.id for x in a)) == 1  # only the ablate cell is shared


def test_seeds_vary_the_probe_subsample_unless_the_study_pins_it():
    cells = parse_study(base(seeds=[0, 1])).cells()
    assert {c.seed: c.probes["seed"] for c in cells} == {0: 0, 1: 1}
    pinned = parse_study(base(seeds=[0, 1], probes={"families": ["behaviour"], "options": {"max_facts": 10, "seed": 7}}))
    assert {c.probes["seed"] for c in pinned.cells()} == {7}


def test_seed_summary_gives_the_mean_and_sample_sd_over_seeds():
    from workbench.study.report import HEADLINE, seed_summary, seed_table

    def row(seed, forget, status="done"):
        r = {"model": "m", "task": "t", "localiser": "wagle", "operator": "graddiff", "budget": 0.05, "seed": seed,
             "status": status, **{col: None for col, _, _ in HEADLINE}}
        r["forget"] = forget
        return r
    rows = [row(0, 0.2), row(1, 0.4), row(2, 0.9), row(3, 0.0, status="failed")]
    [s] = seed_summary(rows)
    assert s["seeds"] == 3 and s["forget"] == pytest.approx(0.5)
    assert s["forget_sd"] == pytest.approx(((0.09 + 0.01 + 0.16) / 2) ** 0.5)  # sample sd: n - 1
    assert s["retain"] is None and s["retain_sd"] is None
    assert seed_table([s])[0]["forget"] == f"0.500±{s['forget_sd']:.3f}"
    [one] = seed_summary([row(0, 0.3)])
    assert one["forget_sd"] is None and seed_table([one])[0]["forget"] == 0.3


def test_a_probe_family_whose_numbers_change_makes_new_cells(monkeypatch):
    from probes import FAMILIES

    before = [c.id for c in parse_study(base()).cells()]
    monkeypatch.setattr(FAMILIES.get("behaviour"), "version", FAMILIES.get("behaviour").version + 1)
    after = [c.id for c in parse_study(base()).cells()]
    assert not set(before) & set(after)  # a stored cell with the old convention is not reused


@pytest.mark.parametrize("change, key", [
    ({"colour": 1}, "colour"),
    ({"name": "has space"}, "name"),
    ({"seeds": [0, "one"]}, "seeds"),
    ({"budgets": [0.0]}, "budgets"),
    ({"threads": -1}, "threads"),
    ({"model": []}, "model"),
    ({"model": [{"spec": "testbed:huge"}]}, "model[0].spec"),
    ({"model": [{"spec": SMALL, "tasks": ["someday"]}]}, "model[0].tasks"),
    ({"localiser": [{"method": "telepathy"}]}, "localiser[0].method"),
    ({"localiser": [{"method": "wagle", "options": {"gama": 1}}]}, "localiser[0].options"),
    ({"localiser": [{"method": "wagle", "options": {"gamma": "big"}}]}, "localiser[0].options"),
    ({"localiser": [{"method": "wagle", "models": ["testbed:moe"]}]}, "localiser[0].models"),
    ({"localiser": [{"method": "wagle"}, {"method": "wagle"}]}, "localiser"),
    ({"operator": [{"name": "forget-everything"}]}, "operator[0].name"),
    ({"operator": [{"name": "ablate", "options": {"mode": "sideways"}}]}, "operator[0].options"),
    ({"operator": [{"name": "ablate", "localisers": ["nowhere"]}]}, "operator[0].localisers"),
    ({"operator": [{"name": "ablate", "localisers": ["none"]}]}, "operator[0].localisers"),
    ({"operator": [{"name": "sae-clamp", "localisers": ["wagle"]}]}, "operator[0].localisers"),
    ({"operator": [{"name": "remove-experts"}]}, "operator"),
    ({"probes": {"families": ["mind-reading"]}}, "probes"),
    ({"probes": {"options": {"max_facts": 1}}}, "probes"),
    ({"probes": {"familes": ["behaviour"]}}, "probes.familes"),
])
def test_malformed_study_names_the_key(change, key):
    with pytest.raises(StudyError) as err:
        parse_study(base(**change), "s.toml")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"study file 's.toml': {key}:"), msg


def test_malformed_study_file_gives_one_line_on_the_cli(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[[model]]\nspec = "testbed:dense"\n[[operator]]\nname = "npo"\noptions = { stepz = 3 }\n')
    r = subprocess.run([sys.executable, "-m", "workbench.cli", "study", "run", str(bad)], capture_output=True, text=True)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "operator[0].options" in lines[0] and "stepz" in lines[0], r.stderr
    syntax = tmp_path / "syntax.toml"
    syntax.write_text('name = "x"\n[[model]\n')
    r = subprocess.run([sys.executable, "-m", "workbench.cli", "study", "status", str(syntax)], capture_output=True, text=True)
    assert r.returncode == 2 and "not valid TOML" in r.stderr and "line 2" in r.stderr
    r = subprocess.run([sys.executable, "-m", "workbench.cli", "study", "run", str(tmp_path / "nope.toml")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "nope.toml" in r.stderr and "does not exist" in r.stderr


def _row(cell_id: str, status="done", value=0.5) -> dict:
    return {"cell_id": cell_id, "study": "t", "model": "m", "task": "default", "localiser": "none",
            "localiser_method": None, "localiser_options": {}, "operator": "ga", "operator_name": "ga",
            "operator_options": {"seed": 0}, "budget": None, "seed": 0, "status": status,
            "error": None if status == "done" else "boom",
            "metrics": [{"metric": "behaviour.forget.all", "family": "behaviour", "direction": "reference",
                         "role": r, "value": value, "note": ""} for r in ("original", "edited")],
            "curves": [{"metric": "relearn.forget.final", "role": "edited", "points": [[0, 0.1], [1, 0.2]]}]}


def test_store_round_trip_wal_and_replacement(tmp_path):
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        store.write(_row("a"))
        store.write(_row("b", status="failed"))
        assert store.status() == {"a": "done", "b": "failed"}
        store.write(_row("b", value=0.25))  # a retried cell replaces its row, metrics and curves
        assert store.status() == {"a": "done", "b": "done"}
        assert store.value("b", "behaviour.forget.all") == 0.25
        assert len(store.metrics("b")) == 2 and len(store.curves()) == 2
        assert store.curves("relearn.forget.final")[0]["points"] == [[0, 0.1], [1, 0.2]]
        wide = store.wide()
        assert [w["cell_id"] for w in wide] == ["a", "b"] and wide[1]["behaviour.forget.all[edited]"] == 0.25
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_version_1_store_is_migrated_with_its_cells_and_takes_intervals(tmp_path):
    path = tmp_path / "s.sqlite"
    conn = sqlite3.connect(path)  # the version-1 layout: metrics without low/high
    conn.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1');
        CREATE TABLE metrics (cell_id TEXT NOT NULL, metric TEXT NOT NULL, family TEXT NOT NULL,
            direction TEXT NOT NULL, role TEXT NOT NULL, value REAL, note TEXT,
            PRIMARY KEY (cell_id, metric, role));
        INSERT INTO metrics VALUES ('old', 'behaviour.forget.all', 'behaviour', 'reference', 'edited', 0.5, NULL);""")
    conn.commit()
    conn.close()
    with Store(path) as store:
        assert store.meta("schema_version") == "2"
        assert store.value("old", "behaviour.forget.all") == 0.5  # nothing stored is lost
        row = _row("a")
        row["metrics"][0].update(low=0.4, high=0.6)
        store.write(row)
        got = next(m for m in store.metrics("a") if m["role"] == "original")
        assert (got["low"], got["high"]) == (0.4, 0.6)


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        store.write(_row("a"))
        bad = _row("c")
        bad["metrics"].append(dict(bad["metrics"][0]))  # duplicate (cell, metric, role): the insert fails
        with pytest.raises(sqlite3.IntegrityError):
            store.write(bad)
        assert store.status() == {"a": "done"}
        assert {m["cell_id"] for m in store.metrics()} == {"a"}


def test_pareto_front():
    pts = [(0.1, 0.9), (0.5, 0.95), (0.2, 0.5), (0.0, 0.3), (0.6, 0.6)]
    # (0.2, 0.5) is beaten by (0.1, 0.9); (0.6, 0.6) by (0.5, 0.95)
    assert pareto_front(pts) == [3, 0, 1]


def test_seeds_from_the_command_line_replace_the_study_files():
    """`--seeds 0,1,2` runs (and reports) a study over other seeds than its file's: each cell
    once per seed, the seed in every seeded option and in the probes' subsample."""
    from workbench.cli.study import with_seeds
    from workbench.errors import WorkbenchInputError
    from workbench.study import load_study

    st = load_study("default")
    three = with_seeds(st, "0,1,2")
    assert three.seeds == (0, 1, 2) and len(three.cells()) == 3 * len(st.cells())
    assert {c.seed for c in three.cells()} == {0, 1, 2} and with_seeds(st, None) is st
    assert {c.id for c in three.cells() if c.seed == 0} == {c.id for c in st.cells()}  # seed 0: the same cells
    for bad in ("0,0", "-1", "a,b", ","):
        with pytest.raises(WorkbenchInputError, match="--seeds"):
            with_seeds(st, bad)
