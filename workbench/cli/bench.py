"""`workbench bench`: the benchmarks side by side with their references; a table and JSON."""
from __future__ import annotations

from typing import Optional

import typer

from .common import command, output_file, threads


def _is_report(path) -> bool:
    from ..bench import load_report

    load_report(path)
    return True


@command
def bench_cmd(
    only: Optional[str] = typer.Option(None, help="comma-separated benchmarks (default: all; see --list)"),
    quick: bool = typer.Option(False, help="a smoke run: the small testbed world, small inputs, 2 repeats"),
    device: str = typer.Option("cpu", help="cpu | cuda[:N]"),
    repeats: Optional[int] = typer.Option(None, help="timed repeats of each case (default 3; 2 with --quick)"),
    json_out: Optional[str] = typer.Option(None, "--json", help="write the report (JSON) here "
                                                               "(default: runs/bench/bench-<time>.json)"),
    compare_to: Optional[str] = typer.Option(None, "--compare", help="an earlier report (JSON): flags each ratio "
                                                                    "that worsened by more than its measured spread"),
    force: bool = typer.Option(False, help="write --json over a file the workbench did not write"),
    list_: bool = typer.Option(False, "--list", help="list the benchmarks"),
):
    """Benchmarks, each case timed side by side with its reference in one process,
    interleaved and repeated: the median ratio and its range over repeats, the target and
    whether it is met. Prints the table; writes the JSON report."""
    import datetime

    from ..bench import BENCHES, check_device, check_names, compare, display, load_report, run_benches
    from .common import table

    if list_:
        for name, (_, summary) in BENCHES.items():
            typer.echo(f"{name:10s} {summary}")
        return
    if repeats is not None and repeats < 1:
        from ..errors import WorkbenchInputError

        raise WorkbenchInputError(f"--repeats {repeats}: expected 1 or more")
    names = check_names([n.strip() for n in only.split(",") if n.strip()] if only else None)
    check_device(device)
    old = load_report(compare_to) if compare_to else None  # a bad file is named before anything runs
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = output_file(json_out or f"runs/bench/bench-{stamp}.json", "benchmark report", _is_report, force, "--json")
    threads()

    def show(name, rows):
        if rows:
            typer.echo(f"\n{name}\n{table(display(rows))}")
    report = run_benches(names, quick=quick, device=device, repeats=repeats, on_rows=show)
    report.save(path)
    typer.echo(f"\nall benchmarks ({report.seconds:.0f} s, {report.device}, {report.machine['cpu']}, "
               f"{report.machine['threads']} threads)\n{table(display(report.rows))}")
    for name, why in report.skipped.items():
        typer.echo(f"benchmark {name} failed: {why}", err=True)
    typer.echo(f"report: {path}")
    if old is not None:
        typer.echo(f"\nagainst {compare_to}\n{table(compare(old, report.rows))}")
    if report.skipped:
        raise typer.Exit(1)
