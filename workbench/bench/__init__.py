"""`workbench bench`: every benchmark side by side with its reference, in one process,
interleaved and repeated; a table, a JSON report, a comparison with an earlier report.

    from workbench.bench import run_benches
    report = run_benches(["lens", "scoring"], quick=True)
"""
from __future__ import annotations

import time

from ..errors import WorkbenchInputError
from .context import Context
from .core import Report, Row, compare, display, load_report  # noqa: F401
from .suites import BENCHES


def check_device(device: str) -> str:
    import torch

    if device == "cpu":
        return device
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise WorkbenchInputError(f"--device {device}: no CUDA device here (accepted: cpu)")
        return device
    raise WorkbenchInputError(f"--device {device!r}: expected cpu or cuda[:N]")


def check_names(names: list[str] | None) -> list[str]:
    if not names:
        return list(BENCHES)
    bad = [n for n in names if n not in BENCHES]
    if bad:
        raise WorkbenchInputError(f"benchmark {bad[0]!r}: expected some of {', '.join(BENCHES)}")
    return [n for n in BENCHES if n in names]  # the peak first, whatever the order asked


def run_benches(names: list[str] | None = None, quick: bool = False, device: str = "cpu", repeats: int | None = None,
                progress: bool = True, on_rows=None) -> Report:
    """Run the named benchmarks (default: all). `on_rows(name, rows)` sees each benchmark's rows
    as they come; a benchmark that fails is recorded in `Report.skipped` and the rest go on."""
    from ..progress import tqdm
    from .core import machine

    names = check_names(names)
    ctx = Context(quick=quick, device=check_device(device), repeats=repeats or (2 if quick else 3))
    report = Report(rows=[], machine=machine(), device=ctx.device, quick=quick)
    t0 = time.perf_counter()
    bar = tqdm(names, desc="benchmarks", disable=not progress)
    for name in bar:
        bar.set_postfix_str(name)
        try:
            rows = BENCHES[name][0](ctx)
        except WorkbenchInputError:
            raise
        except Exception as exc:  # one broken benchmark does not lose the others' numbers
            report.skipped[name] = f"{type(exc).__name__}: {exc}"
            rows = []
        report.rows += rows
        if on_rows:
            on_rows(name, rows)
    report.seconds = time.perf_counter() - t0
    return report
