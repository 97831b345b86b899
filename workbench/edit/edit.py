"""`Edit`: what an operator produces. A value, not a modified model.

An edit holds
- `weights`: new values for the parameters it changes (HF parameter name -> tensor), and/or
- `interventions`: hook-level changes at activation sites (`workbench.edit.interventions`),
plus the operator's name, its full config and provenance. `identity` is a content hash of
what the edit does (its weights and interventions), so two runs that produce the same edit
share every cached measurement of it. `applied(model)` is a scoped session: weights are
swapped in and hooks attached on entry, and on exit the original weights are restored
bit-identically and exactly the hooks it added are removed. `apply` / `revert` do the same
without a `with`. On disk: `edit.safetensors` + `edit.json`; `export` bakes the edit into a
plain Hugging Face checkpoint directory (interventions that weights can express are folded in;
others are refused with the reason).
"""
from __future__ import annotations

import copy
import hashlib
import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ..cache import file_digest, replacing, unchanged
from ..errors import MissingInputError, WorkbenchInputError
from ..hooks import HookSession
from .interventions import Intervention, bake

FORMAT_VERSION = 1


@dataclass
class Edit:
    operator: str
    weights: dict[str, torch.Tensor] = field(default_factory=dict)
    interventions: list[Intervention] = field(default_factory=list)
    provenance: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)  # the operator's full config (set by `apply_operator`)

    @property
    def name(self) -> str:
        return self.operator

    @property
    def identity(self) -> str:
        """Content hash of what the edit does: its new weights and its interventions."""
        h = hashlib.sha256()
        for n in sorted(self.weights):
            h.update(n.encode())
            h.update(self.weights[n].detach().float().contiguous().numpy().tobytes())
        for iv in self.interventions:
            h.update(json.dumps(iv.to_json(), sort_keys=True).encode())
            if iv.value is not None:
                h.update(iv.value.detach().float().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    # -- applying -------------------------------------------------------------------------
    def check_fits(self, model: nn.Module) -> None:
        """Refuse an edit whose new weights do not fit `model`: a parameter the model lacks, a
        tensor of another shape (`copy_` would broadcast a one-element tensor over the whole
        parameter), or a value that is not finite. Checked every time an edit is put on."""
        params = dict(model.named_parameters())
        for n, t in self.weights.items():
            where = f"edit {self.operator!r}: weight {n!r}"
            if n not in params:
                raise WorkbenchInputError(f"{where} is not a parameter of this model: the edit was made for another "
                                          f"architecture")
            if tuple(t.shape) != tuple(params[n].shape):
                raise WorkbenchInputError(f"{where} has shape {tuple(t.shape)}, the model's parameter "
                                          f"{tuple(params[n].shape)}: the edit was made for another model, or its "
                                          f"file was changed")
            if not torch.isfinite(t).all():
                raise WorkbenchInputError(f"{where} holds values that are not finite (NaN or inf)")

    def check_model(self, model: nn.Module, force: bool = False) -> None:
        """Refuse (unless `force`) an edit made on other weights than `model`'s: its provenance
        records the fingerprint of the model it was computed on. An edit of one testbed model
        put on another (e.g. the oracle) fits every shape and means nothing."""
        from ..models.readouts import model_fingerprint

        made_on = self.provenance.get("model_hash")
        if made_on and not force and made_on != model_fingerprint(model):
            raise WorkbenchInputError(f"edit {self.operator!r} was made on {self.provenance.get('model', 'another model')!r} "
                                      f"(weights {made_on}), not on this model's weights "
                                      f"({model_fingerprint(model)}); pass --force to apply it anyway")

    def apply(self, model: nn.Module) -> "AppliedEdit":
        return AppliedEdit(self, model)

    @contextmanager
    def applied(self, model: nn.Module):
        handle = self.apply(model)
        try:
            yield model
        finally:
            handle.revert()

    @property
    def changed_params(self) -> int:
        return sum(t.numel() for t in self.weights.values())

    # -- disk -----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tensors = {f"weight::{n}": t.contiguous() for n, t in self.weights.items()}
        for i, iv in enumerate(self.interventions):
            if iv.value is not None:
                tensors[f"intervention::{i}"] = iv.value.contiguous()
        with replacing(path / "edit.safetensors") as tmp:  # each file written whole, or not at all
            save_file(tensors, str(tmp))
        meta = {"format_version": FORMAT_VERSION, "operator": self.operator, "config": self.config,
                "weights": list(self.weights), "interventions": [iv.to_json() for iv in self.interventions],
                "provenance": self.provenance, "tensors_sha256": file_digest(path / "edit.safetensors")}
        with replacing(path / "edit.json") as tmp:
            tmp.write_text(json.dumps(meta, indent=1, sort_keys=True))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Edit":
        path = Path(path)
        for f in ("edit.json", "edit.safetensors"):
            if not (path / f).is_file():
                raise MissingInputError(f"edit {str(path)!r}: missing {f} (expected a directory written by Edit.save)")
        try:
            meta = json.loads((path / "edit.json").read_text())
            if meta.get("format_version") != FORMAT_VERSION:
                raise WorkbenchInputError(f"format_version {meta.get('format_version')!r}, expected {FORMAT_VERSION}")
            unchanged(path / "edit.safetensors", meta.get("tensors_sha256"), "edit.json")
            tensors = load_file(str(path / "edit.safetensors"))
            ivs = [Intervention.from_json(d, tensors.get(f"intervention::{i}"))
                   for i, d in enumerate(meta["interventions"])]
            return cls(meta["operator"], {n: tensors[f"weight::{n}"] for n in meta["weights"]}, ivs,
                       meta["provenance"], meta["config"])
        except WorkbenchInputError as exc:
            raise WorkbenchInputError(f"edit {str(path)!r}: {exc}") from None
        except (ValueError, TypeError, KeyError, OSError, SafetensorError) as exc:  # a malformed file
            raise WorkbenchInputError(f"edit {str(path)!r} is not readable: {type(exc).__name__}: {exc}") from None

    def baked(self, model: nn.Module) -> nn.Module:
        """A copy of `model` with the edit's weights and its interventions folded in."""
        self.check_fits(model)
        model = copy.deepcopy(model)
        with torch.no_grad():
            for n, t in self.weights.items():
                model.get_parameter(n).copy_(t)
        return bake(model, self.interventions)

    def export(self, loaded, path: str | Path) -> Path:
        """A plain HF checkpoint (model + tokenizer) with the edit baked into the weights."""
        path = Path(path)
        model = self.baked(loaded.model)
        model.save_pretrained(path)
        loaded.tokenizer.save_pretrained(path)
        return path


class AppliedEdit:
    """An edit in force on a model; `revert()` restores the exact original state."""

    def __init__(self, edit: Edit, model: nn.Module):
        edit.check_fits(model)
        self.model = model
        self.saved = {n: model.get_parameter(n).detach().clone() for n in edit.weights}
        with torch.no_grad():
            for n, t in edit.weights.items():
                model.get_parameter(n).copy_(t)
        self.session = HookSession(model)
        self.active = True
        try:
            for iv in edit.interventions:
                iv.attach(self.session)
        except BaseException:  # nothing half-applied stays behind
            self.revert()
            raise

    def revert(self) -> None:
        if not self.active:
            return
        self.session.close()
        with torch.no_grad():
            for n, t in self.saved.items():
                self.model.get_parameter(n).copy_(t)
        self.active = False
