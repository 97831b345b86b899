"""What every benchmark shares: the device, the repeats, the models (loaded once), the
measured GEMM peak."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

SMALL = "testbed:dense?people=40&attributes=3&steps=600"
DEFAULT = "testbed:dense"
REAL = "smollm2-135m-instruct"


@dataclass
class Context:
    quick: bool = False
    device: str = "cpu"
    repeats: int = 3
    peak: dict = field(default_factory=dict)  # "fp32"/"bf16" -> GFLOP/s
    _models: dict = field(default_factory=dict)

    def model(self, spec: str):
        if spec not in self._models:
            from ..models import load

            loaded = load(spec, progress=False)
            loaded.model.to(self.device)
            self._models[spec] = loaded
        return self._models[spec]

    def specs(self, full: list[str]) -> list[str]:
        return [SMALL] if self.quick else full

    def sync(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()

    def timed(self, fn: Callable) -> Callable:
        """`fn` followed by a device sync (GPU work is asynchronous)."""
        def run():
            out = fn()
            self.sync()
            return out
        return run


def short(spec: str) -> str:
    return "testbed:dense (small world)" if spec == SMALL else spec
