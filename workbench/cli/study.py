"""`workbench study run|status|report|export`: scripted ablation studies."""
from __future__ import annotations

from typing import Optional

import typer

from ..errors import MissingInputError, WorkbenchInputError
from .common import command, output_file, table, threads

study_app = typer.Typer(no_args_is_help=True, help="Scripted ablation studies: run, status, report, export.")

_STUDY_ARG = typer.Argument(..., help="a study TOML file, a bundled study (default, quick), or a run directory")
_OUT_OPT = typer.Option(None, "--out", help="the run directory (default: runs/<study name>)")
SEEDS_OPT = typer.Option(None, "--seeds", help="comma-separated seeds in place of the study file's, e.g. 0,1,2 "
                                               "(the intervals over seeds; status and report need the same)")


def with_seeds(st, seeds: Optional[str]):
    """The study with `--seeds` in place of its own (distinct integers >= 0), or as it is."""
    import dataclasses

    if not seeds:
        return st
    try:
        values = [int(x) for x in seeds.split(",") if x.strip()]
    except ValueError:
        values = []
    if not values or len(set(values)) != len(values) or min(values) < 0:
        raise WorkbenchInputError(f"--seeds {seeds!r}: expected distinct integers >= 0, comma-separated, e.g. 0,1,2")
    return dataclasses.replace(st, seeds=tuple(values))


def _study_store(study: str, out: Optional[str], seeds: Optional[str] = None):
    """(Study or None, run directory) for a study file / bundled name / run directory."""
    from pathlib import Path

    from ..study import default_out, load_study

    p = Path(study)
    if p.is_dir() and (p / "study.sqlite").is_file():
        return None, p
    if p.is_file() and p.suffix in (".sqlite", ".db"):
        return None, p.parent
    st = with_seeds(load_study(study), seeds)
    return st, Path(out) if out else default_out(st)


@study_app.command("run")
@command
def study_run(study: str = _STUDY_ARG, out: Optional[str] = _OUT_OPT,
              executor: str = typer.Option("local", help="local | process | ray"),
              workers: int = typer.Option(1, help="process executor: worker processes"),
              address: Optional[str] = typer.Option(None, help="ray executor: the cluster address (default: a local Ray)"),
              report: bool = typer.Option(True, help="write the HTML report when done"),
              retry_failed: bool = typer.Option(True, help="rerun cells that failed before"),
              seeds: Optional[str] = SEEDS_OPT):
    """Run a study: every cell not yet in the store (localise -> edit -> probe); a killed run
    resumes where it stopped. Prints the headline table and writes the report."""
    from ..study import EXECUTORS, load_study, run_study

    if executor not in EXECUTORS:
        raise WorkbenchInputError(f"--executor {executor!r}: expected one of {', '.join(EXECUTORS)}")
    st = with_seeds(load_study(study), seeds)
    threads()
    run = run_study(st, out=out, executor=executor, workers=workers, address=address, retry_failed=retry_failed)
    typer.echo(f"\nstudy {st.name}: {len(run.cells)} cells, {len(run.ran)} run now, {len(run.skipped)} already "
               f"stored, {len(run.failed)} failed ({run.seconds:.0f} s) -> {run.store_path}")
    print_headline(run.store_path, [c.id for c in run.cells])
    if report:
        from ..study import write_report

        typer.echo(f"report: {write_report(run.store_path, ids=[c.id for c in run.cells])}")
    if run.failed:  # the finished cells are stored; a script must still see that the study is incomplete
        typer.echo(f"error: {len(run.failed)} of {len(run.cells)} cells failed (`workbench study status` names "
                   f"the errors; a rerun retries them)", err=True)
        raise typer.Exit(1)


def print_headline(store_path, ids=None) -> None:
    from ..study import Store
    from ..study.report import floor_warnings, headline_table, reference_rows, seed_summary, seed_table, study_rows
    from ..tasks.declared import LEGEND

    with Store(store_path) as store:
        cells = study_rows(store, ids)
        refs = reference_rows(store, ids)
        rows = headline_table(cells, refs, intervals=True)
    for line in floor_warnings(cells):
        typer.echo(f"warning: {line}")
    typer.echo(table(rows, ["model", "localiser", "operator", "budget", "seed", "forget", "retain", "neighbour",
                            "forget_in_sample", "retain_in_sample", "forget_quality", "mia_auc", "latent",
                            "relearned", "concept_cos", "seconds", "status"]))
    typer.echo(LEGEND)
    typer.echo("±: half the 95% bootstrap interval over people (a difference inside it is noise)")
    if any(r["role"] == "oracle2" for r in refs):
        from probes.result import NOISE_FLOOR
        typer.echo(NOISE_FLOOR)
    summary = seed_summary(cells)
    if any(r["seeds"] > 1 for r in summary):
        typer.echo("\nover seeds (operator and localiser seeds, and the probes' fact subsample): mean ±sd")
        typer.echo(table(seed_table(summary), ["model", "localiser", "operator", "budget", "seeds", "forget", "retain",
                                               "neighbour", "forget_quality", "mia_auc", "latent", "relearned"]))


@study_app.command("status")
@command
def study_status(study: str = _STUDY_ARG, out: Optional[str] = _OUT_OPT, seeds: Optional[str] = SEEDS_OPT):
    """Which cells are done, failed or still to run."""
    from ..study import Store

    st, run_dir = _study_store(study, out, seeds)
    stored = {}
    if (run_dir / "study.sqlite").is_file():
        with Store(run_dir / "study.sqlite") as store:
            stored = {c["cell_id"]: c for c in store.cells()}
    cells = st.cells() if st is not None else []
    rows = [{"cell": c.id, "what": c.label, "status": stored.get(c.id, {}).get("status", "to run"),
             "seconds": stored.get(c.id, {}).get("seconds")} for c in cells]
    planned = {c.id for c in cells}
    rows += [{"cell": i, "what": f"{c['model']} | {c['localiser']} -> {c['operator']}", "status": c["status"],
              "seconds": c["seconds"]} for i, c in stored.items() if i not in planned]
    typer.echo(table(rows, ["cell", "what", "status", "seconds"]))
    counts = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    typer.echo(f"\n{run_dir / 'study.sqlite'}: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    for i, c in stored.items():
        if c["status"] == "failed":
            typer.echo(f"failed {i}: {c['error']}")


@study_app.command("report")
@command
def study_report(study: str = _STUDY_ARG, out: Optional[str] = _OUT_OPT,
                 html: Optional[str] = typer.Option(None, help="where to write the HTML (default: <run dir>/report.html)"),
                 seeds: Optional[str] = SEEDS_OPT,
                 force: bool = typer.Option(False, help="write --html over a file that is not a study report")):
    """Write the study's self-contained HTML report (plotly figures + a sortable table)."""
    from ..study import write_report
    from ..study.report import is_report

    if html:
        output_file(html, "study report", is_report, force, "--html")
    st, run_dir = _study_store(study, out, seeds)
    ids = [c.id for c in st.cells()] if st is not None else None
    path = write_report(run_dir / "study.sqlite", html, ids=ids)
    print_headline(run_dir / "study.sqlite", ids)
    typer.echo(f"report: {path}")


@study_app.command("export")
@command
def study_export(study: str = _STUDY_ARG, out: Optional[str] = _OUT_OPT,
                 file: str = typer.Option(..., "--file", "-f", help="output file (.csv or .parquet)"),
                 format: Optional[str] = typer.Option(None, help="csv | parquet (default: from the file name)"),
                 seeds: Optional[str] = SEEDS_OPT,
                 force: bool = typer.Option(False, help="write --file over a file that is not a study export")):
    """Export one row per cell (coordinates + every metric per role) as CSV or Parquet."""
    from pathlib import Path

    from .. import cache
    from ..study import Store
    from ..study.store import CELL_COLUMNS

    output_file(file, "study export", _is_export, force, "--file")
    fmt = (format or Path(file).suffix.lstrip(".")).lower()
    if fmt not in ("csv", "parquet"):
        told = f"--format {format!r}" if format else f"--file {file!r} (its name ends in {Path(file).suffix!r})"
        raise WorkbenchInputError(f"export format of {told}: expected csv or parquet (a .csv or .parquet file "
                                  f"name, or --format)")
    st, run_dir = _study_store(study, out, seeds)
    if not (run_dir / "study.sqlite").is_file():
        raise MissingInputError(f"study store {str(run_dir / 'study.sqlite')!r} does not exist: run the study first")
    import pandas as pd

    with Store(run_dir / "study.sqlite") as store:
        rows = store.wide([c.id for c in st.cells()] if st is not None else None)
    frame = pd.DataFrame(rows) if rows else pd.DataFrame(columns=list(CELL_COLUMNS))  # the header, even with no cell
    with cache.replacing(file) as tmp:
        if fmt == "csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
    typer.echo(f"{len(frame)} cells x {frame.shape[1]} columns -> {file}")


def _is_export(path) -> bool:
    """Whether a file is a study export (CSV or Parquet whose first column is cell_id)."""
    from .. import cache

    if cache.head_holds(path, "PAR1", limit=4):
        import pyarrow.parquet as pq

        return pq.read_schema(path).names[:1] == ["cell_id"]
    with open(path, encoding="utf-8") as f:
        return f.readline().startswith("cell_id,")
