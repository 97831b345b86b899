"""Shared fixtures. Tiers: unit (no model), integration (tiny models, cached per session),
e2e (the real CLI). Models are built into $WORKBENCH_CACHE, so a second run reuses them."""
from __future__ import annotations

import os

import pytest
import torch

# Under pytest-xdist (`scripts/dev.sh test` runs two workers) each worker and every process it
# starts (CLI, app, notebook kernels, study cells) gets its share of the cores, so no two torch
# processes fight for the same core (`workbench.cores`). Testbed training keeps its own
# single-threaded processes.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1 and "WORKBENCH_CORES" not in os.environ:
    os.environ["WORKBENCH_CORES"] = str(max(1, (os.cpu_count() or 1) // _WORKERS))
from workbench.cores import use_cores  # noqa: E402

use_cores()

# A small world and a short recipe: enough to learn the facts, seconds to train.
SMALL = "people=40&attributes=3&steps=600"


def _load(spec):
    from workbench.models import load

    loaded = load(spec, progress=False)
    # transformers installs its own output-recording hooks (e.g. MoE router logits) lazily on
    # the first forward; run one so that the hook baseline below counts only what tests add
    with torch.no_grad():
        loaded.model(input_ids=torch.tensor([[loaded.tokenizer.bos_token_id or 0]]))
    return loaded


@pytest.fixture(scope="session")
def small_dense():
    return _load(f"testbed:dense?{SMALL}")


@pytest.fixture(scope="session")
def small_dense_oracle(small_dense):
    return _load(small_dense.oracle_spec)


@pytest.fixture(scope="session")
def small_dense_oracle_seed1():
    """A second oracle, trained with another seed: what "indistinguishable" looks like."""
    return _load(f"testbed:dense?{SMALL}&oracle=1&train_seed=1")


@pytest.fixture(scope="session")
def small_moe():
    return _load(f"testbed:moe?{SMALL}")


@pytest.fixture(scope="session")
def default_dense():
    return _load("testbed:dense")


@pytest.fixture(scope="session")
def default_dense_oracle(default_dense):
    return _load(default_dense.oracle_spec)


@pytest.fixture(scope="session")
def default_moe():
    return _load("testbed:moe")


@pytest.fixture(scope="session")
def smollm2():
    return _load("smollm2-135m-instruct")


_SESSION_MODELS = ("small_dense", "small_dense_oracle", "small_dense_oracle_seed1", "small_moe", "default_moe", "default_dense", "default_dense_oracle", "smollm2")


def _hooks(module: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               for m in module.modules())


@pytest.fixture(autouse=True)
def no_hook_left_behind(request):
    """No test may leave a hook on a shared model (hooks live inside scoped sessions)."""
    before = {n: _hooks(request.getfixturevalue(n).model) for n in _SESSION_MODELS
              if n in request.fixturenames}
    yield
    for name, count in before.items():
        after = _hooks(request.getfixturevalue(name).model)
        assert after == count, f"{request.node.name} left {after - count} hook(s) on {name}"


@pytest.fixture
def only_train_pairs(monkeypatch):
    """`with only_train_pairs(task): ...` records every (fact, form) pair rendered inside and
    then asserts that each is a train pair of `task` (`workbench.tasks.declared`): a train form,
    no retain-eval person, no neighbour, no holdout person. Instruments the data path every localiser, operator
    and SAE reads through (`ForgetTask.render`)."""
    import contextlib

    from workbench.tasks.declared import retain_eval_people
    from workbench.tasks.prompts import default_forms
    from workbench.tasks.task import ForgetTask

    @contextlib.contextmanager
    def check(task):
        forms, held = set(default_forms(task)), retain_eval_people(task)
        neighbours = {f.subject for s in ("neighbour", "holdout") for f in task.facts(s)}
        seen = []
        render = ForgetTask.render

        def recorded(self, fact, form):
            seen.append((fact.subject, form if isinstance(form, str) else form.name))
            return render(self, fact, form)
        monkeypatch.setattr(ForgetTask, "render", recorded)
        try:
            yield seen
        finally:
            monkeypatch.setattr(ForgetTask, "render", render)
        bad = [(s, f) for s, f in seen if f not in forms or s in held or s in neighbours]
        assert not bad, f"{len(bad)} evaluation pair(s) reached the edit side, e.g. {bad[:3]}"
    return check
