"""What every command shares: one-line errors for user mistakes (bugs show as bugs), plain
text tables, torch threads, the pipeline, and registry listings."""
from __future__ import annotations

import functools
import os
import traceback
from typing import Callable

import typer

from ..cache import output_dir, output_file  # noqa: F401  (the commands' --out rule)
from ..errors import WorkbenchInputError

BUG = ("bug: this is an error in the workbench, not in your input; please report it with the traceback "
       "above (WORKBENCH_DEBUG=1 raises it as it is)")


def command(fn: Callable) -> Callable:
    """A user mistake (`WorkbenchInputError`) prints one `error: ...` line and exits 2; any
    other exception is a bug: its traceback, a line saying so, exit 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except WorkbenchInputError as exc:
            if os.environ.get("WORKBENCH_DEBUG"):
                raise
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        except (typer.Exit, typer.Abort, KeyboardInterrupt, SystemExit):
            raise
        except Exception:
            if os.environ.get("WORKBENCH_DEBUG"):
                raise
            traceback.print_exc()
            typer.echo(BUG, err=True)
            raise typer.Exit(1) from None

    return wrapper


def threads() -> None:
    from ..cores import use_cores

    use_cores()


def pipeline():
    """A pipeline with progress bars, torch using every core."""
    threads()
    from ..pipeline import Pipeline

    return Pipeline(progress=True)


def model_and_task(model: str, task: str):
    """(pipeline, loaded model, its forget task)."""
    pipe = pipeline()
    loaded = pipe.model(model)
    return pipe, loaded, pipe.task(loaded, task)


def table(rows: list[dict], columns: list[str] | None = None) -> str:
    """Plain-text table; floats print with three decimals."""
    if not rows:
        return "(empty)"
    columns = columns or list(rows[0])

    def fmt(v) -> str:
        if isinstance(v, float):
            return f"{v:.2e}" if v != 0 and abs(v) < 1e-3 else f"{v:.3f}"
        return "" if v is None else str(v)
    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths)).rstrip()  # noqa: E731
    return "\n".join([line(columns), line(["-" * w for w in widths]), *map(line, cells)])


def list_registry(registry) -> None:
    """Each entry of a registry: name, summary and options with their defaults."""
    import dataclasses

    width = max(len(n) for n in registry.names()) + 1
    for name in registry.names():
        cls = registry.get(name)
        opts = ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(cls.Config))
        typer.echo(f"{name:{width}s} {cls.summary}\n{'':{width}s} options: {opts or '(none)'}")
