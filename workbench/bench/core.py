"""The benchmark harness: cases timed side by side with their reference in one process,
interleaved and repeated, summarised as ratios with their spread; a report as a table and
as JSON; a comparison with an earlier report. (Printing is the CLI's: `display` gives the cells.)

A row's ratio is the median of the per-repeat ratios (each repeat times the case and its
reference back to back, alternating which goes first, so drift in the machine's speed hits
both alike); its spread is the range of those per-repeat ratios. Two reports disagree on a
row when the ranges do not overlap.
"""
from __future__ import annotations

import json
import math
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from ..errors import WorkbenchInputError

# kinds of row: what the ratio means and which way is better
KINDS = {
    "time ratio": "lower",        # case seconds / reference seconds
    "speedup": "higher",          # reference seconds / case seconds
    "fraction of peak": "higher",  # achieved FLOP/s / the measured GEMM peak
    "GFLOP/s": "higher",
    "exponent": "lower",          # fitted exponent of time against a size
    "spearman": "higher",         # rank agreement of an approximation's scores with the exact ones
}
REPORT_VERSION = 1


@dataclass
class Row:
    bench: str
    case: str
    reference: str
    kind: str
    ratio: float
    lo: float
    hi: float
    case_s: float | None = None  # median seconds of the case (None: not a timing)
    ref_s: float | None = None
    target: float | None = None  # the goal for `ratio` (compared in the kind's direction)
    target_note: str = ""  # where the target applies, when not everywhere
    repeats: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def better(self) -> str:
        return KINDS[self.kind]

    @property
    def met(self) -> bool | None:
        if self.target is None or not math.isfinite(self.ratio):
            return None
        return self.ratio <= self.target if self.better == "lower" else self.ratio >= self.target

    @property
    def key(self) -> tuple:
        return (self.bench, self.case, self.reference)

    def to_dict(self) -> dict:
        return {**asdict(self), "better": self.better, "met": self.met}


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds of each callable, `repeats` times, in rotating order (after `warmup` untimed
    rounds: first calls pay for lazy set-up, caches, allocator growth)."""
    if repeats < 1:
        raise WorkbenchInputError(f"repeats={repeats}: expected 1 or more")
    names = list(fns)
    for _ in range(warmup):
        for n in names:
            fns[n]()
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        shift = r % len(names)
        for n in names[shift:] + names[:shift]:
            t0 = time.perf_counter()
            fns[n]()
            times[n].append(time.perf_counter() - t0)
    return times


def ratio_row(bench: str, case: str, reference: str, case_times: list[float], ref_times: list[float],
              kind: str = "time ratio", **kw) -> Row:
    """A row from paired timings: per-repeat ratios, their median and range."""
    if kind == "time ratio":
        per = [c / r for c, r in zip(case_times, ref_times)]
    elif kind == "speedup":
        per = [r / c for c, r in zip(case_times, ref_times)]
    else:
        raise ValueError(kind)
    return Row(bench, case, reference, kind, statistics.median(per), min(per), max(per),
               statistics.median(case_times), statistics.median(ref_times), repeats=len(per), **kw)


def value_row(bench: str, case: str, kind: str, values: list[float], reference: str = "-", **kw) -> Row:
    return Row(bench, case, reference, kind, statistics.median(values), min(values), max(values),
               repeats=len(values), **kw)


def fit_exponent(sizes: list[float], seconds: list[float]) -> float:
    """Least-squares slope of log(seconds) against log(size): time ∝ size^slope."""
    xs, ys = [math.log(s) for s in sizes], [math.log(t) for t in seconds]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else float("nan")


def machine() -> dict:
    import torch

    info = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "cpu": _cpu_name(), "cores": os.cpu_count(), "threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


@dataclass
class Report:
    rows: list[Row]
    machine: dict
    device: str
    quick: bool
    started: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    seconds: float = 0.0
    skipped: dict = field(default_factory=dict)  # bench -> why it did not run

    def to_dict(self) -> dict:
        return {"version": REPORT_VERSION, "started": self.started, "seconds": round(self.seconds, 1),
                "device": self.device, "quick": self.quick, "machine": self.machine,
                "skipped": self.skipped, "rows": [r.to_dict() for r in self.rows]}

    def save(self, path: str | Path) -> Path:
        from ..cache import replacing

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=1))
        return path


def _fmt(x: float | None, kind: str = "") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if kind == "GFLOP/s":
        return f"{x:.1f}"
    return f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"


def _seconds(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x * 1000:.1f} ms" if x < 1 else f"{x:.2f} s"


def display(rows: list[Row]) -> list[dict]:
    """The rows as the columns a table shows (text cells)."""
    out = []
    for r in rows:
        met = {True: "yes", False: "NO", None: ""}[r.met]
        target = "" if r.target is None else ("≤ " if r.better == "lower" else "≥ ") + _fmt(r.target)
        if r.target_note:
            target = f"{target} ({r.target_note})" if target else r.target_note
        out.append({"bench": r.bench, "case": r.case, "vs": r.reference,
                    "case time": _seconds(r.case_s), "ref time": _seconds(r.ref_s),
                    "value": f"{_fmt(r.ratio, r.kind)} [{_fmt(r.lo, r.kind)}, {_fmt(r.hi, r.kind)}]",
                    "kind": r.kind, "target": target, "met": met,
                    "notes": ", ".join(f"{k} {_fmt(v) if isinstance(v, float) else v}" for k, v in r.extra.items())})
    return out


def load_report(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise WorkbenchInputError(f"--compare {path}: no such file (expected the JSON a `workbench bench --json` wrote)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WorkbenchInputError(f"--compare {path}: not JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list) or data.get("version") != REPORT_VERSION:
        raise WorkbenchInputError(f"--compare {path}: not a benchmark report of version {REPORT_VERSION} "
                                  f"(expected the JSON a `workbench bench --json` wrote)")
    return data


def compare(old: dict, new: list[Row]) -> list[dict]:
    """Rows present in both reports; `worse` when the new ratio moved the wrong way by more
    than both measured spreads (the old and new per-repeat ranges do not overlap)."""
    before = {(r["bench"], r["case"], r["reference"]): r for r in old["rows"]}
    out = []
    for r in new:
        o = before.get(r.key)
        if o is None:
            continue
        if r.better == "lower":
            worse, better = r.lo > o["hi"], r.hi < o["lo"]
        else:
            worse, better = r.hi < o["lo"], r.lo > o["hi"]
        out.append({"bench": r.bench, "case": r.case, "vs": r.reference, "old": o["ratio"], "new": r.ratio,
                    "old range": f"[{_fmt(o['lo'])}, {_fmt(o['hi'])}]", "new range": f"[{_fmt(r.lo)}, {_fmt(r.hi)}]",
                    "verdict": "WORSE" if worse else "better" if better else "same within spread"})
    return out
