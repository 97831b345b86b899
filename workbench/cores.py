"""How many CPU cores this process may give torch.

Every core, unless `WORKBENCH_CORES` says fewer. Two processes that each use every core of a
small machine fight for it (two torch jobs on two cores were measured 100× slower); the test
suite's parallel workers therefore set `WORKBENCH_CORES=1` for themselves and every process
they start (the CLI, the app, the notebooks' kernels, a study's cells).
"""
from __future__ import annotations

import os

from .errors import WorkbenchInputError

ENV = "WORKBENCH_CORES"


def cores() -> int:
    """`WORKBENCH_CORES` if set (a positive integer), else every core of the machine."""
    value = os.environ.get(ENV, "").strip()
    if not value:
        return max(1, os.cpu_count() or 1)
    if not value.isdigit() or int(value) < 1:
        raise WorkbenchInputError(f"{ENV}={value!r}: expected a positive integer (or unset: every core)")
    return int(value)


def use_cores() -> int:
    """Set torch's intra-op threads to `cores()`; returns that number."""
    import torch

    n = cores()
    torch.set_num_threads(n)
    return n
