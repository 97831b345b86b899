"""The study store: one SQLite database (WAL mode) per study directory.

A cell is written in one transaction (its row, its metric values and its curves) and only
when it has finished, so a study killed at any moment leaves every cell either complete or
absent: never a partial row, never a duplicate (the cell id is the primary key).

Tables
- `meta(key, value)`: the study's name and config (JSON), and `quality_floor`: the floor
  verdict of each testbed model the study used (`runner.check_floors`).
- `cells`: one row per finished cell (status `done` or `failed` with the error), its
  coordinates, seconds, the artifacts it used (localisation, edit, probe result JSON).
- `metrics(cell_id, metric, family, direction, role, value, note, low, high)`: every probe
  metric per role (original / edited / oracle), with its 95% interval where one was measured.
  A version-1 store (without `low`, `high`) is migrated in place when opened.
- `curves(cell_id, metric, role, points)`: curve points (JSON) per metric and role.
"""
from __future__ import annotations

import functools
import json
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import WorkbenchInputError

SCHEMA_VERSION = 2  # 2: metrics.low, metrics.high
CELL_COLUMNS = ("cell_id", "study", "model", "task", "localiser", "localiser_method", "localiser_options",
                "operator", "operator_name", "operator_options", "budget", "seed", "status", "error",
                "seconds", "localise_seconds", "edit_seconds", "probe_seconds", "changed_weights", "threads",
                "executor", "localisation", "edit", "result", "finished")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cells (
    cell_id TEXT PRIMARY KEY, study TEXT NOT NULL, model TEXT NOT NULL, task TEXT NOT NULL,
    localiser TEXT NOT NULL, localiser_method TEXT, localiser_options TEXT NOT NULL,
    operator TEXT NOT NULL, operator_name TEXT NOT NULL, operator_options TEXT NOT NULL,
    budget REAL, seed INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('done', 'failed')), error TEXT,
    seconds REAL, localise_seconds REAL, edit_seconds REAL, probe_seconds REAL, changed_weights INTEGER,
    threads INTEGER, executor TEXT,
    localisation TEXT, edit TEXT, result TEXT, finished TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS metrics (
    cell_id TEXT NOT NULL REFERENCES cells(cell_id) ON DELETE CASCADE,
    metric TEXT NOT NULL, family TEXT NOT NULL, direction TEXT NOT NULL, role TEXT NOT NULL,
    value REAL, note TEXT, low REAL, high REAL, PRIMARY KEY (cell_id, metric, role));
CREATE TABLE IF NOT EXISTS curves (
    cell_id TEXT NOT NULL REFERENCES cells(cell_id) ON DELETE CASCADE,
    metric TEXT NOT NULL, role TEXT NOT NULL, points TEXT NOT NULL,
    PRIMARY KEY (cell_id, metric, role));
"""


class Store:
    """`Store(path)` opens (or creates) the database; `write(row)` stores one finished cell."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            self.conn.row_factory = sqlite3.Row
            self.conn.text_factory = lambda b: b.decode(errors="replace")  # damaged text is not a traceback
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            with self.transaction():
                for statement in _statements():
                    self.conn.execute(statement)
                self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                if self.meta("schema_version") == "1":  # intervals arrived in version 2: keep every stored cell
                    for col in ("low", "high"):
                        self.conn.execute(f"ALTER TABLE metrics ADD COLUMN {col} REAL")
                    self.conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
            version = self.meta("schema_version")
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:  # not a SQLite file, or a damaged one
            raise WorkbenchInputError(f"study store {str(self.path)!r} is not a readable SQLite database "
                                      f"({exc}): expected a study.sqlite written by `workbench study run`") from None
        if version != str(SCHEMA_VERSION):
            raise WorkbenchInputError(f"study store {str(self.path)!r}: schema version {version}, expected {SCHEMA_VERSION}")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- meta -------------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row["value"]

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction():
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- cells --------------------------------------------------------------------------------
    def write(self, row: dict) -> None:
        """Store one finished cell (replacing an earlier row of the same id, e.g. a failed
        cell that was retried) with its metrics and curves, all in one transaction."""
        cell = {c: row.get(c) for c in CELL_COLUMNS}
        for k in ("localiser_options", "operator_options"):
            cell[k] = json.dumps(cell[k] or {}, sort_keys=True)
        cell["finished"] = cell["finished"] or time.strftime("%Y-%m-%dT%H:%M:%S")
        with self.transaction() as c:
            c.execute("DELETE FROM cells WHERE cell_id = ?", (cell["cell_id"],))
            c.execute(f"INSERT INTO cells ({', '.join(CELL_COLUMNS)}) VALUES ({', '.join('?' * len(CELL_COLUMNS))})",
                      [cell[k] for k in CELL_COLUMNS])
            c.executemany("INSERT INTO metrics (cell_id, metric, family, direction, role, value, note, low, high) "
                          "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          [(cell["cell_id"], m["metric"], m["family"], m["direction"], m["role"], m["value"],
                            m.get("note") or None, m.get("low"), m.get("high")) for m in row.get("metrics", [])])
            c.executemany("INSERT INTO curves VALUES (?, ?, ?, ?)",
                          [(cell["cell_id"], k["metric"], k["role"], json.dumps(k["points"]))
                           for k in row.get("curves", [])])

    def status(self) -> dict[str, str]:
        """{cell_id: status} of every stored cell."""
        return {r["cell_id"]: r["status"] for r in self.conn.execute("SELECT cell_id, status FROM cells")}

    def cells(self, ids: list[str] | None = None) -> list[dict]:
        rows = [dict(r) for r in self.conn.execute("SELECT * FROM cells ORDER BY rowid")]
        for r in rows:
            for k in ("localiser_options", "operator_options"):
                r[k] = json.loads(r[k])
        if ids is not None:
            order = {i: n for n, i in enumerate(ids)}
            rows = sorted((r for r in rows if r["cell_id"] in order), key=lambda r: order[r["cell_id"]])
        return rows

    def metrics(self, cell_id: str | None = None) -> list[dict]:
        q, args = "SELECT * FROM metrics", ()
        if cell_id is not None:
            q, args = q + " WHERE cell_id = ?", (cell_id,)
        return [dict(r) for r in self.conn.execute(q + " ORDER BY rowid", args)]

    def value(self, cell_id: str, metric: str, role: str = "edited") -> float | None:
        row = self.conn.execute("SELECT value FROM metrics WHERE cell_id = ? AND metric = ? AND role = ?",
                                (cell_id, metric, role)).fetchone()
        return None if row is None else row["value"]

    def curves(self, metric: str | None = None) -> list[dict]:
        q, args = "SELECT * FROM curves", ()
        if metric is not None:
            q, args = q + " WHERE metric = ?", (metric,)
        out = []
        for r in self.conn.execute(q + " ORDER BY rowid", args):
            d = dict(r)
            d["points"] = json.loads(d["points"])
            out.append(d)
        return out

    def wide(self, ids: list[str] | None = None) -> list[dict]:
        """One row per cell: its coordinates plus a column per `metric[role]`."""
        rows = self.cells(ids)
        values: dict[str, dict] = {}
        for m in self.metrics():
            values.setdefault(m["cell_id"], {})[f"{m['metric']}[{m['role']}]"] = m["value"]
        out = []
        for r in rows:
            flat = {k: (json.dumps(v, sort_keys=True) if isinstance(v, dict) else v) for k, v in r.items()}
            out.append({**flat, **values.get(r["cell_id"], {})})
        return out


def _reading(method):
    """A damaged store (a malformed page, a value that is not the JSON it should be) met while
    reading becomes one line naming the store, not a traceback."""
    @functools.wraps(method)
    def read(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.DatabaseError, UnicodeDecodeError, TypeError, ValueError) as exc:
            if isinstance(exc, WorkbenchInputError):
                raise
            raise WorkbenchInputError(f"study store {str(self.path)!r} is damaged ({type(exc).__name__}: {exc}); "
                                      f"rerun the study into a new run directory") from None
    return read


for _name in ("meta", "status", "cells", "metrics", "value", "curves", "wide"):
    setattr(Store, _name, _reading(getattr(Store, _name)))


def _statements() -> list[str]:
    return [s.strip() for s in _SCHEMA.split(";") if s.strip()]
