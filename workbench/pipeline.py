"""The pipeline: load → localise → edit → probe, every stage cached; the one place the stages
meet. The CLI, the app, the study runner and the notebooks all go through it.

    from workbench.pipeline import Pipeline
    pipe = Pipeline()
    loaded = pipe.model("testbed:dense")
    task = pipe.task(loaded)
    loc = pipe.localise(loaded, task, "wagle").localisation
    edit = pipe.edit(loaded, task, "graddiff", {"fraction": 0.05}, localisation=loc).edit
    result = pipe.probe(loaded, task, edit=edit, config={"max_facts": 50})
    pipe.accuracy_table(loaded, task, edit)      # original / edited / oracle per split

`Pipeline.run` is one study cell: the whole chain from model spec to probe result.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .edit import Edit, apply_operator_cached
from .errors import WorkbenchInputError
from .faithfulness import CheckTable, check
from .localise import Localisation, localise_cached
from .models import LoadedModel, load
from .models.knowledge import heldout_accuracy, split_accuracy
from .progress import tqdm
from .tasks.task import ForgetTask

from probes import ProbeConfig, ProbeResult, probe  # noqa: I001  (probes sits beside workbench)


@dataclass
class Localised:
    localisation: Localisation
    path: Path  # its cache entry
    reused: bool  # read from the cache rather than computed now


@dataclass
class Edited:
    edit: Edit
    path: Path  # its cache entry
    reused: bool


@dataclass
class CellResult:
    """What `Pipeline.run` produced: the artefacts, the probe result and the time per stage."""
    loaded: LoadedModel
    task: ForgetTask
    localised: Localised | None
    edited: Edited
    result: ProbeResult
    seconds: dict[str, float]


class Pipeline:
    """Loaded models (kept per spec, so the oracle and repeated calls load once; at most
    `max_models` of them, the least recently used let go first) and the cached stages."""

    def __init__(self, progress: bool = True, max_models: int | None = None):
        if max_models is not None and max_models < 1:
            raise WorkbenchInputError(f"max_models={max_models}: expected a positive integer or None")
        self.progress = progress
        self.max_models = max_models
        self._models: dict[str, LoadedModel] = {}
        self._recent: list[LoadedModel] = []  # distinct loaded models, least recently used first
        self._lock = threading.Lock()  # the app shares one pipeline between sessions

    # -- models and tasks -----------------------------------------------------------------
    def model(self, spec: str) -> LoadedModel:
        with self._lock:
            if spec not in self._models:
                loaded = load(spec, progress=self.progress)
                self._models[spec] = self._models[loaded.spec] = loaded
            loaded = self._models[spec]
            self._recent = [m for m in self._recent if m is not loaded] + [loaded]
            while self.max_models is not None and len(self._recent) > self.max_models:
                old = self._recent.pop(0)
                self._models = {k: m for k, m in self._models.items() if m is not old}
            return loaded

    def oracle(self, loaded: LoadedModel) -> LoadedModel | None:
        """The model's oracle twin (trained without the forget set), where one exists."""
        return self.model(loaded.oracle_spec) if loaded.oracle_spec else None

    def task(self, loaded: LoadedModel, name: str = "default") -> ForgetTask:
        return loaded.task(name)

    # -- the stages -----------------------------------------------------------------------
    def localise(self, loaded: LoadedModel, task: ForgetTask, method: str, options: dict[str, Any] | None = None,
                 fresh: bool = False) -> Localised:
        loc, path, reused = localise_cached(loaded, task, method, options, progress=self.progress, fresh=fresh)
        return Localised(loc, path, reused)

    def edit(self, loaded: LoadedModel, task: ForgetTask, operator: str, options: dict[str, Any] | None = None,
             localisation: Localisation | None = None, fresh: bool = False) -> Edited:
        edit, path, reused = apply_operator_cached(loaded, localisation, task, operator, options,
                                                   progress=self.progress, fresh=fresh)
        return Edited(edit, path, reused)

    def trace_sites(self, loaded: LoadedModel, task: ForgetTask, config: ProbeConfig) -> list | None:
        """The task's concept vectors for the traces family (the concept localiser's top
        sites, cached), or None when the family is not run or the model has no value vectors."""
        if "traces" not in config.families or "neuron" not in loaded.arch.units:
            return None
        vectors = config.family("traces").config.vectors
        return self.localise(loaded, task, "concept").localisation.top(k=vectors)

    def probe(self, loaded: LoadedModel, task: ForgetTask, edit: Edit | None = None,
              config: ProbeConfig | dict | None = None, oracle="auto", use_cache: bool = True,
              on_step: Callable[[str, str, int, int], None] | None = None, label: str | None = None,
              noise_floor: bool | None = None) -> ProbeResult:
        """The original, the edited model and the oracle side by side (`oracle="auto"`: the
        model's twin, loaded once per pipeline); `label` names the edit (default: its operator).
        `noise_floor`: also a second oracle (the twin of the next training seed; trained once),
        whose reference metrics against the oracle are the noise floor (None: the config's
        `noise_floor` option, which a study file sets)."""
        config = config if isinstance(config, ProbeConfig) else ProbeConfig.from_options(config)
        noise_floor = config.noise_floor if noise_floor is None else noise_floor
        if oracle == "auto" and loaded.oracle_spec:
            oracle = self.model(loaded.oracle_spec)
        second = None
        if noise_floor:
            second = self.model(loaded.second_oracle_spec) if loaded.second_oracle_spec else "auto"
        return probe(loaded, task, edit=edit, oracle=oracle, config=config,
                     trace_sites=self.trace_sites(loaded, task, config), progress=self.progress,
                     use_cache=use_cache, on_step=on_step, label=label, second_oracle=second)

    def check(self, loaded: LoadedModel, task: ForgetTask, localisation: Localisation, **options) -> list[CheckTable]:
        """Faithfulness of a localisation (`workbench.faithfulness.check`)."""
        return check(loaded, task, localisation, progress=self.progress, **options)

    def accuracy_table(self, loaded: LoadedModel, task: ForgetTask, edit: Edit | None = None,
                       max_facts: int | None = None) -> list[dict]:
        """Exact-answer accuracy of the original, the edited model and the oracle: the quick
        side-by-side the CLI and the app print. `forget`, `retain`, `neighbour` are held out of
        every edit (`heldout_accuracy`: the forget facts in the evaluation forms, the retain-eval
        people, the neighbours); `forget_in_sample` and `retain_in_sample` are every
        non-multiple-choice form of the whole split, the forms and people an edit trained on included."""
        def row(name: str, m) -> dict:
            inside = split_accuracy(m.model, m.tokenizer, task, ("forget", "retain"), max_facts=max_facts)
            return {"model": name, **heldout_accuracy(m.model, m.tokenizer, task, max_facts=max_facts),
                    "forget_in_sample": inside["forget"], "retain_in_sample": inside["retain"]}
        rows = [row("original", loaded)]
        if edit is not None:
            with edit.applied(loaded.model):
                rows.append(row(f"edited ({edit.operator})", loaded))
        oracle = self.oracle(loaded)
        if oracle is not None:
            rows.append(row("oracle", oracle))
        return rows

    # -- the whole chain ------------------------------------------------------------------
    def run(self, model: str, task: str, localiser: tuple[str, dict] | None, operator: tuple[str, dict],
            probes: ProbeConfig | dict, label: str | None = None) -> CellResult:
        """localise (if a localiser is given) -> edit -> probe against the original and the
        oracle; `label` names the edit in the result (default: the operator's name)."""
        loaded = self.model(model)
        forget_task = self.task(loaded, task)
        steps = ["localise", "edit", "probe"] if localiser else ["edit", "probe"]
        bar = tqdm(steps, desc=f"{model}: {localiser[0] if localiser else 'none'} -> {operator[0]}",
                   disable=not self.progress, leave=False)
        seconds: dict[str, float] = {"localise": 0.0}
        localised = None
        for step in bar:
            t0 = time.perf_counter()
            if step == "localise":
                localised = self.localise(loaded, forget_task, *localiser)
            elif step == "edit":
                edited = self.edit(loaded, forget_task, *operator,
                                   localisation=localised.localisation if localised else None)
            else:
                result = self.probe(loaded, forget_task, edit=edited.edit, config=probes, label=label)
            seconds[step] = time.perf_counter() - t0
        return CellResult(loaded, forget_task, localised, edited, result, seconds)
