"""Testbed models: the quality floor of the default world (full model vs oracle twin), and
determinism / cache behaviour on a small world."""
import pytest
import torch

from workbench.models import load
from workbench.models.knowledge import chance, knowledge, quality_floor
from workbench.tasks.world import World

pytestmark = pytest.mark.integration


def test_small_model_learns_its_facts(small_dense, small_moe):
    for m in (small_dense, small_moe):
        t = knowledge(m.model, m.tokenizer, m.task(), splits=("retain",))
        assert t["retain"]["trained"].accuracy >= 0.9, (m.spec, t)
        assert m.n_params <= 5_000_000
    assert small_moe.model.config.num_local_experts >= 4 and small_moe.model.config.num_experts_per_tok == 2


def test_cache_hit_is_identical(small_dense):
    """(How fast a hit is: tests/benchmarks/bench_testbed.py.)"""
    again = load(small_dense.spec, progress=False)
    assert again.path == small_dense.path
    for (n, a), (_, b) in zip(small_dense.model.named_parameters(), again.model.named_parameters()):
        assert torch.equal(a, b), n


@pytest.mark.slow
def test_default_world_quality_floor(default_dense, default_dense_oracle):
    world = World(default_dense.testbed.world)
    task = world.task()
    full = knowledge(default_dense.model, default_dense.tokenizer, task)
    oracle = knowledge(default_dense_oracle.model, default_dense_oracle.tokenizer, task)
    rows = quality_floor(full, oracle, chance(task, "forget", world))
    failed = [r for r in rows if r["ok"] is False]
    assert not failed, rows
