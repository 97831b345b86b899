"""Study files (TOML): models x tasks x localisers x operators x budgets x seeds, plus probes.

    name = "my-study"
    seeds = [0, 1]              # the operators', localisers' and probes' (fact subsample) `seed`
    budgets = [0.01, 0.05]      # the `fraction` of a localisation an operator may touch
    threads = 0                 # torch threads per cell; 0 = every core. Same threads, same numbers

    [[model]]
    spec = "testbed:dense"
    tasks = ["default"]         # optional; default ["default"]

    [[localiser]]
    method = "wagle"            # a registered localiser (`workbench localise --list`)
    label = "wagle"             # optional; default: the method
    options = { gamma = 1e-3 }  # optional
    models = ["testbed:dense"]  # optional: only on these models
    budgets = [0.05, 0.5, 0.95] # optional: its own budgets instead of the study's

    [[operator]]
    name = "graddiff"           # a registered operator (`workbench edit --list`)
    options = { steps = 60 }
    localisers = ["none", "wagle"]  # optional ("none": the whole model); default: all it accepts

    [probes]
    families = ["behaviour", "tofu", "relearn"]
    options = { max_facts = 50, noise_floor = true }   # shared options (noise_floor: a 2nd oracle)

`load_study` validates everything before any model loads (a mistake: one line naming the key);
`Study.cells()` expands the grid into `Cell`s, each id a hash of what determines its numbers.
"""
from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .. import cache
from ..errors import MissingInputError, WorkbenchInputError
from .fields import budgets_of, check_model_spec, keys, list_of, models_of, options_of, tables

NONE = "none"  # the localiser label for "no localisation: the whole model"
BUNDLED = ("default", "quick", "wagle")
_TOP_KEYS = {"name", "seeds", "budgets", "threads", "model", "localiser", "operator", "probes", "description"}


class StudyError(WorkbenchInputError):
    """A malformed study file: the message names the file, the key and what is accepted."""


@dataclass(frozen=True)
class ModelEntry:
    spec: str
    tasks: tuple[str, ...] = ("default",)


@dataclass(frozen=True)
class LocaliserEntry:
    method: str
    label: str
    options: dict = field(default_factory=dict)
    models: tuple[str, ...] | None = None
    budgets: tuple[float, ...] | None = None  # its own budgets (e.g. WAGLE's published 50% and 95%)

    @property
    def kinds(self) -> frozenset:
        """The site kinds its localiser scores."""
        from ..localise import LOCALISERS
        return LOCALISERS.get(self.method).kinds


@dataclass(frozen=True)
class OperatorEntry:
    name: str
    label: str
    options: dict = field(default_factory=dict)
    localisers: tuple[str, ...] | None = None
    models: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Cell:
    """One (model, task, localiser, operator, budget, seed) point of a study."""

    study: str
    model: str
    task: str
    localiser: str  # label, or "none"
    localiser_method: str | None
    localiser_options: dict
    operator: str  # label
    operator_name: str
    operator_options: dict
    budget: float | None
    seed: int
    probes: dict  # the ProbeConfig as a dict

    @property
    def key(self) -> dict:
        """Everything that determines this cell's numbers (labels and the study name do not),
        the probe families' versions included: a family whose numbers changed (a convention, an
        interval) makes a new cell, and a store never mixes old numbers with new ones."""
        from probes import FAMILIES

        families = self.probes.get("families") or FAMILIES.names()
        return {"model": self.model, "task": self.task, "localiser": self.localiser_method,
                "localiser_options": self.localiser_options, "operator": self.operator_name,
                "operator_options": self.operator_options, "budget": self.budget, "seed": self.seed,
                "probes": self.probes, "probe_versions": {f: FAMILIES.get(f).version for f in families}}

    @property
    def id(self) -> str:
        return cache.content_hash(self.key)

    @property
    def label(self) -> str:
        b = "" if self.budget is None else f" @{self.budget:g}"
        return f"{self.model} | {self.localiser} -> {self.operator}{b} | seed {self.seed}"

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "id": self.id}


@dataclass(frozen=True)
class Study:
    name: str
    models: tuple[ModelEntry, ...]
    localisers: tuple[LocaliserEntry, ...]
    operators: tuple[OperatorEntry, ...]
    probes: dict
    seeds: tuple[int, ...] = (0,)
    budgets: tuple[float, ...] = (0.05,)
    threads: int = 0
    source: str = ""
    description: str = ""
    probes_follow_seed: bool = True  # each cell's probe subsample seed = its seed (no `seed` in probes.options)

    def cells(self) -> list[Cell]:
        """The grid, in a stable order (model, task, localiser, operator, budget, seed)."""
        from ..edit import OPERATORS

        out: list[Cell] = []
        for m in self.models:
            for task in m.tasks:
                for loc in [None, *self.localisers]:
                    if loc is not None and loc.models is not None and m.spec not in loc.models:
                        continue
                    for op in self.operators:
                        if op.models is not None and m.spec not in op.models:
                            continue
                        cls = OPERATORS.get(op.name)
                        if not _pairs(op, cls, loc):
                            continue
                        uses_budget = loc is not None and _has_field(cls.Config, "fraction") and \
                            "fraction" not in op.options and "k" not in op.options
                        own = loc.budgets if loc is not None and loc.budgets else self.budgets
                        for budget in (own if uses_budget else (None,)):
                            for seed in self.seeds:
                                out.append(self._cell(m.spec, task, loc, op, cls, budget, seed))
        return out

    def _cell(self, model, task, loc, op, cls, budget, seed) -> Cell:
        from ..localise import LOCALISERS

        loc_options = {}
        if loc is not None:
            loc_options = dict(loc.options)
            if _has_field(LOCALISERS.get(loc.method).Config, "seed") and "seed" not in loc_options:
                loc_options["seed"] = seed
        op_options = dict(op.options)
        if budget is not None:
            op_options["fraction"] = budget
        if _has_field(cls.Config, "seed") and "seed" not in op_options:
            op_options["seed"] = seed
        return Cell(self.name, model, task, NONE if loc is None else loc.label,
                    None if loc is None else loc.method, loc_options, op.label, op.name, op_options,
                    budget, seed, {**self.probes, "seed": seed} if self.probes_follow_seed else self.probes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _has_field(cls, name: str) -> bool:
    return any(f.name == name for f in dataclasses.fields(cls))


def _pairs(op: OperatorEntry, cls, loc: LocaliserEntry | None) -> bool:
    """Whether operator `op` runs on localisation `loc` (None = the whole model)."""
    label = NONE if loc is None else loc.label
    if op.localisers is not None:
        return label in op.localisers
    if loc is None:
        return not cls.needs_localisation
    return cls.takes_kinds(loc.kinds)


# -- loading ------------------------------------------------------------------------------
def bundled_path(name: str) -> Path:
    return Path(str(resources.files("workbench.study") / "studies" / f"{name}.toml"))


def resolve_path(study: str | Path) -> Path:
    """A study file path, or the name of a bundled study."""
    p = Path(study)
    if p.is_file():
        return p
    if str(study) in BUNDLED:
        return bundled_path(str(study))
    if p.suffix != ".toml" and not p.exists():
        raise MissingInputError(f"study {str(study)!r}: no such file, and not a bundled study "
                                f"(bundled: {', '.join(BUNDLED)})")
    raise MissingInputError(f"study file {str(study)!r} does not exist")


def load_study(study: str | Path) -> Study:
    path = resolve_path(study)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise StudyError(f"study file {str(path)!r}: not valid TOML: {exc}") from None
    return parse_study(data, str(path))


def parse_study(data: dict, source: str = "<study>") -> Study:
    """Validate a study dict (parsed TOML) into a `Study`; errors name the key."""
    from ..edit import OPERATORS
    from ..localise import LOCALISERS
    from ..tasks import split_name
    from probes import ProbeConfig

    def fail(key: str, msg: str):
        raise StudyError(f"study file {source!r}: {key}: {msg}")

    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        fail(unknown[0], f"unknown key; accepted: {', '.join(sorted(_TOP_KEYS))}")
    name = data.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        fail("name", f"{name!r}: expected letters, digits, '.', '_' or '-', starting with a letter or digit "
                     f"(the name is the run directory's)")
    seeds = list_of(data.get("seeds", [0]), int, "seeds", fail)
    budgets = budgets_of(data.get("budgets", [0.05]), "budgets", fail)
    if min(seeds) < 0:
        fail("seeds", f"{seeds!r}: expected integers >= 0")
    threads = data.get("threads", 0)
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 0:
        fail("threads", f"{threads!r}: expected an integer >= 0 (0 = every core)")

    models = []
    for i, m in enumerate(tables(data, "model", fail, required=True)):
        where = f"model[{i}]"
        keys(m, {"spec", "tasks"}, where, fail)
        spec = m.get("spec")
        if not isinstance(spec, str) or not spec:
            fail(f"{where}.spec", "expected a model spec string (see `workbench models list`)")
        check_model_spec(spec, f"{where}.spec", fail)
        tasks = tuple(list_of(m.get("tasks", ["default"]), str, f"{where}.tasks", fail))
        for t in tasks:
            try:
                split_name(t)
            except WorkbenchInputError as exc:
                fail(f"{where}.tasks", str(exc))
        models.append(ModelEntry(spec, tasks))
    specs = {m.spec for m in models}

    localisers = []
    for i, entry in enumerate(tables(data, "localiser", fail)):
        where = f"localiser[{i}]"
        keys(entry, {"method", "label", "options", "models", "budgets"}, where, fail)
        method = entry.get("method")
        if method not in LOCALISERS:
            fail(f"{where}.method", f"{method!r}: expected one of {', '.join(LOCALISERS.names())}")
        options = options_of(entry, where, LOCALISERS.get(method).Config, fail)
        label = entry.get("label", method)
        if not isinstance(label, str) or not label or label == NONE:
            fail(f"{where}.label", f"{label!r}: expected a non-empty string other than {NONE!r}")
        own = budgets_of(entry["budgets"], f"{where}.budgets", fail) if "budgets" in entry else None
        localisers.append(LocaliserEntry(method, label, options, models_of(entry, where, specs, fail), own))
    labels = [loc.label for loc in localisers]
    dup = {x for x in labels if labels.count(x) > 1}
    if dup:
        fail("localiser", f"label {sorted(dup)[0]!r} is used twice; give each entry its own label")

    operators = []
    for i, entry in enumerate(tables(data, "operator", fail, required=True)):
        where = f"operator[{i}]"
        keys(entry, {"name", "label", "options", "localisers", "models"}, where, fail)
        name_ = entry.get("name")
        if name_ not in OPERATORS:
            fail(f"{where}.name", f"{name_!r}: expected one of {', '.join(OPERATORS.names())}")
        cls = OPERATORS.get(name_)
        options = options_of(entry, where, cls.Config, fail)
        label = entry.get("label", name_)
        if not isinstance(label, str) or not label:
            fail(f"{where}.label", "expected a non-empty string")
        locs = entry.get("localisers")
        if locs is not None:
            locs = tuple(list_of(locs, str, f"{where}.localisers", fail))
            for lab in locs:
                if lab != NONE and lab not in labels:
                    fail(f"{where}.localisers", f"{lab!r}: expected {NONE!r} or a localiser label "
                                                f"({', '.join(labels) or 'none defined'})")
                if lab == NONE and cls.needs_localisation:
                    fail(f"{where}.localisers", f"operator {name_!r} needs a localisation; {NONE!r} is not accepted")
                if lab != NONE:
                    kinds = next(loc for loc in localisers if loc.label == lab).kinds
                    if not cls.takes_kinds(kinds):
                        fail(f"{where}.localisers", f"{lab!r} gives {'+'.join(sorted(kinds))} sites; operator "
                                                    f"{name_!r} accepts {', '.join(sorted(cls.accepts)) or 'no localisation'}")
        operators.append(OperatorEntry(name_, label, options, locs, models_of(entry, where, specs, fail)))
    labels_op = [op.label for op in operators]
    dup = {x for x in labels_op if labels_op.count(x) > 1}
    if dup:
        fail("operator", f"label {sorted(dup)[0]!r} is used twice; give each entry its own label")

    probes = data.get("probes", {})
    if not isinstance(probes, dict):
        fail("probes", "expected a table with families = [...] and options = {...}")
    keys(probes, {"families", "options"}, "probes", fail)
    pdict = probes.get("options", {})
    if not isinstance(pdict, dict):
        fail("probes.options", "expected a table, e.g. options = { max_facts = 50, relearn = { steps = 10 } }")
    pdict = dict(pdict)
    if "families" in probes:
        pdict["families"] = tuple(list_of(probes["families"], str, "probes.families", fail))
    try:
        pconfig = ProbeConfig.from_options(pdict)
    except WorkbenchInputError as exc:
        fail("probes", str(exc))
    study = Study(name, tuple(models), tuple(localisers), tuple(operators), pconfig.to_dict(),
                  tuple(seeds), budgets, threads, source,
                  str(data.get("description", "")), probes_follow_seed="seed" not in pdict)
    if not study.cells():
        fail("operator", "the study expands to no cell: no operator pairs with any localiser "
                         "(check operator.localisers and the localisers' site kinds)")
    return study
