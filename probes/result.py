"""`ProbeResult`: named metrics measured on several models (roles) side by side.

Roles are `original`, `edited` and `oracle` (in that order). Every metric has a direction:
`higher` or `lower` is better, or `reference` (closer to the oracle's value is better). A
curve metric (relearning) also carries its points per role. A role that could not be
measured (no oracle for a pretrained model, no edit given) is listed in `missing` with the
reason, and each metric says per role why a value is absent: never a silent `None`.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from workbench.errors import MissingInputError, WorkbenchInputError

# oracle2: a second oracle (another training seed), measured against the oracle: the noise floor
ROLES = ("original", "edited", "oracle", "oracle2")
ORACLES = ("oracle", "oracle2")  # trained independently of the original: no weight-level comparison with it
NOISE_FLOOR = ("oracle2: a second oracle (another training seed); its value and interval on a reference metric "
               "(one computed against the oracle) are the noise floor: a difference inside them is noise")
DIRECTIONS = ("higher", "lower", "reference")


@dataclass
class Metric:
    name: str  # "<family>.<what>[.<split>]", e.g. "behaviour.forget.trained"
    family: str
    direction: str
    values: dict[str, float] = field(default_factory=dict)  # role -> value
    notes: dict[str, str] = field(default_factory=dict)  # role -> why there is no value
    curves: dict[str, list[list[float]]] = field(default_factory=dict)  # role -> [[x, y], ...]
    description: str = ""
    # role -> [low, high]: the 95% bootstrap interval over people (`workbench.stats`), where measured
    intervals: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise ValueError(f"metric {self.name!r}: direction {self.direction!r}: expected one of "
                             f"{', '.join(DIRECTIONS)}")

    def value(self, role: str) -> float | None:
        return self.values.get(role)

    def interval(self, role: str) -> tuple[float, float] | None:
        """The 95% interval of the role's value, or None where none was measured."""
        iv = self.intervals.get(role)
        if iv is None or any(x is None or (isinstance(x, float) and math.isnan(x)) for x in iv):
            return None
        return iv[0], iv[1]


@dataclass
class ProbeResult:
    task: str
    task_hash: str
    models: dict[str, str]  # role -> model identity (spec, plus the edit where there is one)
    metrics: list[Metric]
    missing: dict[str, str] = field(default_factory=dict)  # role -> reason it was not probed
    details: dict[str, dict] = field(default_factory=dict)  # family -> role -> JSON data
    config: dict = field(default_factory=dict)
    seconds: dict[str, dict[str, float]] = field(default_factory=dict)  # family -> role -> s
    cached: dict[str, dict[str, bool]] = field(default_factory=dict)  # family -> role -> reused

    @property
    def roles(self) -> list[str]:
        return [r for r in ROLES if r in self.models]

    def metric(self, name: str) -> Metric:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(f"metric {name!r}: expected one of {', '.join(m.name for m in self.metrics)}")

    def value(self, name: str, role: str) -> float | None:
        return self.metric(name).value(role)

    def interval(self, name: str, role: str) -> tuple[float, float] | None:
        return self.metric(name).interval(role)

    def family(self, family: str) -> list[Metric]:
        return [m for m in self.metrics if m.family == family]

    # -- presentation ---------------------------------------------------------------------
    def table(self, families: list[str] | None = None) -> str:
        roles = [r for r in ROLES if r in self.models or r in self.missing]
        rows = [m for m in self.metrics if families is None or m.family in families]
        width = max([len(m.name) for m in rows] + [6])

        def text(m: Metric, r: str) -> str:
            v, iv = m.values.get(r), m.interval(r)
            return "n/a" if v is None else _fmt(v) if iv is None else f"{_fmt(v)} [{_fmt(iv[0])}, {_fmt(iv[1])}]"
        cw = max([10] + [len(text(m, r)) + 2 for m in rows for r in roles])
        head = f"{'metric':<{width}}  {'better':<9}" + "".join(f"{r:>{cw}}" for r in roles)
        lines = [head, "-" * len(head)]
        for m in rows:
            cells = [f"{text(m, r):>{cw}}" for r in roles]
            lines.append(f"{m.name:<{width}}  {m.direction:<9}" + "".join(cells))
        if any(m.interval(r) for m in rows for r in roles):
            lines.append("[low, high]: 95% bootstrap interval over the people of the metric's split "
                         "(traces.concept: over the followed vectors)")
        if "oracle2" in self.models:
            lines.append(NOISE_FLOOR)
        for role, why in self.missing.items():
            lines.append(f"[{role}] not probed: {why}")
        grouped: dict[tuple[str, str], list[str]] = {}
        for m in rows:
            for r, why in m.notes.items():
                if r not in self.missing:
                    grouped.setdefault((r, why), []).append(m.name)
        for (r, why), names in grouped.items():
            lines.append(f"[{r}] {', '.join(names)}: {why}")
        return "\n".join(lines)

    def records(self) -> list[dict]:
        """One flat row per (metric, role): what a store or a dataframe wants."""
        out = []
        for m in self.metrics:
            for r in self.roles:
                out.append({"metric": m.name, "family": m.family, "direction": m.direction,
                            "role": r, "value": m.values.get(r), "note": m.notes.get(r, ""),
                            "low": (m.interval(r) or (None, None))[0], "high": (m.interval(r) or (None, None))[1]})
        return out

    # -- persistence ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return _clean(asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> "ProbeResult":
        d = dict(d)
        d["metrics"] = [Metric(**m) for m in d["metrics"]]
        return cls(**d)

    def save(self, path: str | Path) -> Path:
        from workbench.cache import replacing

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=1, allow_nan=False))
        return path

    @classmethod
    def is_result_file(cls, path: str | Path) -> bool:
        """Whether `path` holds a probe result (what `--json` may replace)."""
        try:
            cls.load(path)
        except Exception:
            return False
        return True

    @classmethod
    def load(cls, path: str | Path) -> "ProbeResult":
        path = Path(path)
        if not path.is_file():
            raise MissingInputError(f"probe result {str(path)!r} does not exist: expected a JSON file "
                                    f"written by `workbench probe --json`")
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (ValueError, TypeError, KeyError, OSError) as exc:  # a malformed file
            raise WorkbenchInputError(f"probe result {str(path)!r} is not readable: {type(exc).__name__}: "
                                      f"{exc}") from None


def _fmt(v: float) -> str:
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    if abs(v) >= 1000 or (v != 0 and abs(v) < 1e-3):
        return f"{v:.2e}"
    return f"{v:.3f}"


def _clean(obj):
    """JSON-safe: NaN/inf become None (a missing value is stated in `notes` instead)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj
