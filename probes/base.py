"""Probe configuration, the shared context, and the family registry.

A probe family is a `ProbeFamily` subclass registered by name, with its own frozen `Config`,
its own `version` and the shared options it `reads`. It measures one model at a time
(`measure`, whose JSON output is cached by the model's content hash, the family's config and
version) and then compares the roles (`compare`, cheap, never cached), so a reference-based
metric (forget quality, PrivLeak, relearning gap) is always computed from the same raw
measurements that are reported side by side. Adding a family is one module in this package
plus its import in `probes/__init__.py`.

Options: the shared ones (`max_facts`, `seed`, `qa_form`, `generate_tokens`) and each family's
own, written `family.option` (`-o relearn.steps=10`; in a study file
`options = { relearn = { steps = 10 } }`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from workbench.errors import WorkbenchInputError
from workbench.registry import Registry, config_from_dict
from workbench.tasks.task import HOLDOUT, Example, Fact, ForgetTask

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from workbench.models import LoadedModel
    from workbench.sites import Site

    from .result import Metric

FAMILIES: Registry = Registry("probe")
NO_ORACLE = "no oracle to compare with"


class EditLike(Protocol):
    """What `probe` needs of an edit (a `workbench.edit.Edit` is one): its name, a content
    identity for the cache, and a scoped way to put it on a model and take it off."""
    name: str
    identity: str

    def applied(self, model) -> "AbstractContextManager": ...


@dataclass
class Context:
    """What every family may read: the (subsampled) task, the config, the original model, and
    what the caller supplies (`trace_sites`: the task's concept vectors, ranked)."""

    task: ForgetTask  # subsampled to max_facts per split
    full_task: ForgetTask
    config: "ProbeConfig"
    original: "LoadedModel"
    nonmembers: list[Fact]
    trace_sites: list["Site"] | None = None
    shared: dict = field(default_factory=dict)  # e.g. the original's value vectors (traces)

    def examples(self, split: str, kinds=("declarative", "qa", "cloze")) -> list[Example]:
        return [ex for ex in self.task.examples(split) if ex.kind in kinds]

    @property
    def qa_form(self) -> str:
        if self.config.qa_form is not None:
            self.task.form(self.config.qa_form)  # raises naming the accepted forms
            return self.config.qa_form
        decl, qa = self.task.forms_of("declarative"), self.task.forms_of("qa")
        if self.task.trained is None and decl:  # a real task: its facts are the ones answered in this form
            return decl[0]
        names = qa or decl or [n for n, f in self.task.forms.items() if f.kind != "mcq"]
        if not names:
            raise WorkbenchInputError(f"task {self.task.name!r} has no non-multiple-choice form to probe")
        return names[0]

    @property
    def text_form(self) -> str:
        """The declarative form every model was trained on (for membership texts)."""
        decl = self.task.forms_of("declarative") or [self.qa_form]
        if self.task.trained is not None:
            f0 = self.task.facts("forget")[0] if self.task.facts("forget") else None
            trained = [n for n in decl if f0 is None or self.task.trained(f0, self.task.forms[n])]
            decl = trained or decl
        return decl[0]


@dataclass(frozen=True)
class NoOptions:
    """A family without options of its own."""


class ProbeFamily:
    """Subclasses set `name`, `summary`, `Config`, `reads` (the shared options the
    measurement depends on) and implement `measure` and `compare`; `version` is bumped when
    the family's numbers change for the same inputs (it keys the cache of this family only)."""

    name: ClassVar[str]
    summary: ClassVar[str]
    Config: ClassVar[type] = NoOptions
    version: ClassVar[int] = 1
    reads: ClassVar[tuple[str, ...]] = ()
    needs_original: ClassVar[bool] = False  # its measurement depends on the original model too
    # it trains the model it measures (an attack): an edit is measured as its baked checkpoint
    # where it exports, else hooked and weights-only side by side (`probes.run.attack_models`)
    trains_model: ClassVar[bool] = False

    def __init__(self, config=None):
        self.config = config if config is not None else self.Config()

    def attacks_baked(self) -> bool:
        """Whether an edit is measured as its baked checkpoint (see `trains_model`)."""
        return self.trains_model

    def prepare(self, ctx: Context) -> None:
        """Called once before any model is measured (no edit is on the original yet)."""

    def cache_key(self, ctx: Context) -> dict:
        """What the measurement depends on besides the model's weights and the task."""
        return {"family": self.name, "version": self.version, "config": dataclasses.asdict(self.config),
                "shared": {k: getattr(ctx.config, k) for k in ("max_facts", "seed", *self.reads)}}

    def measure(self, ctx: Context, model, tok) -> dict:
        raise NotImplementedError

    def compare(self, ctx: Context, raws: dict, missing: dict) -> tuple[list["Metric"], dict]:
        raise NotImplementedError


def register(cls):
    FAMILIES.register(cls.name)(cls)
    return cls


@dataclass(frozen=True)
class SharedProbeOptions:
    """The options every family may read (a family's own are written `family.option`)."""

    families: tuple[str, ...] | None = None  # None: every registered family
    max_facts: int | None = None  # facts per split (seeded subsample); None = all
    seed: int = 0
    qa_form: str | None = None  # None: testbed, the question form; real tasks, the form facts were selected in
    generate_tokens: int = 8
    # also probe a second oracle (the twin of the next training seed): its reference metrics
    # against the oracle are the noise floor (`probes.result.NOISE_FLOOR`); trains it once
    noise_floor: bool = False
    # the flat names these options had before each family got its own options
    RENAMED: ClassVar[dict] = {
        "tofu_form": "qa_form", "samples": "behaviour.samples", "mink_k": "muse.mink_k",
        "trace_vectors": "traces.vectors", **{f"relearn_{k}": f"relearn.{k}" for k in
                                              ("method", "steps", "lr", "batch", "lora_r", "lora_alpha", "data")}}


@dataclass(frozen=True)
class ProbeConfig(SharedProbeOptions):
    """The probe run: which families, the shared options, and each family's own options
    (`options[family]`: that family's `Config` fields the user set)."""

    options: dict = field(default_factory=dict)

    def __post_init__(self):
        names = FAMILIES.names()
        fams = tuple(names if self.families is None else self.families)
        bad = [f for f in fams if f not in names]
        if bad:
            raise WorkbenchInputError(f"probe {bad[0]!r}: expected one of {', '.join(names)}")
        object.__setattr__(self, "families", fams)
        if self.max_facts is not None and self.max_facts < 2:
            raise WorkbenchInputError(f"option max_facts={self.max_facts}: expected an integer >= 2 or none")
        if not isinstance(self.noise_floor, bool):
            raise WorkbenchInputError(f"option noise_floor={self.noise_floor!r}: expected true or false")
        if self.generate_tokens < 1:
            raise WorkbenchInputError(f"option generate_tokens={self.generate_tokens}: expected a positive integer")
        clean = {}
        for fam, opts in dict(self.options).items():
            if fam not in names:
                raise WorkbenchInputError(f"options for {fam!r}: expected a probe family ({', '.join(names)})")
            cfg = config_from_dict(FAMILIES.get(fam).Config, opts)  # typed and checked
            clean[fam] = {k: getattr(cfg, k) for k in opts}
        object.__setattr__(self, "options", clean)

    @classmethod
    def from_options(cls, values: dict[str, Any] | None) -> "ProbeConfig":
        """From user input: shared keys, `family.option` keys and `{family: {option: value}}`
        tables (strings are converted to each option's type); also takes a `to_dict()`."""
        values = dict(values or {})
        shared, options = {}, {}
        for key, value in values.items():
            fam, dot, opt = key.partition(".")
            if dot:
                options.setdefault(fam, {})[opt] = value
            elif key == "options" and isinstance(value, dict):  # a `to_dict()`: {family: {option: value}}
                for fam, opts in value.items():
                    options.setdefault(fam, {}).update(opts)
            elif isinstance(value, dict):
                options.setdefault(key, {}).update(value)
            else:
                shared[key] = value
        base = config_from_dict(SharedProbeOptions, shared)
        return cls(**dataclasses.asdict(base), options=options)

    def family(self, name: str) -> ProbeFamily:
        cls = FAMILIES.get(name)
        return cls(config_from_dict(cls.Config, self.options.get(name)))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def nonmember_facts(task: ForgetTask) -> list[Fact]:
    """Non-members for membership inference: the facts of the task's holdout people (people
    no model was trained on, as TOFU's holdout set; `workbench.tasks.world`), else, for a task
    without a holdout split (a real model's), the distractor variants (`distractor_facts`)."""
    return list(task.facts(HOLDOUT)) or distractor_facts(task)


def distractor_facts(task: ForgetTask) -> list[Fact]:
    """Each forget fact with its first distractor as the answer: a knowledge test (does the
    model prefer the true answer of a forget fact to a wrong one?), not a holdout set. The
    muse family reports it separately (`muse.distractor_auc`) where the task has holdout people."""
    return [Fact(f.subject, f.relation, f.distractors[0], (f.answer, *f.distractors[1:]), f.topic)
            for f in task.facts("forget") if f.distractors]


def mean(xs) -> float:
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else float("nan")
