"""The testbed recipe: steps scale with the world, bf16 only where the CPU computes it, and
the quality floor's verdict (no model: knowledge tables written by hand)."""
import pytest

from workbench.models import train
from workbench.models.knowledge import FLOOR, FloorVerdict, GroupAccuracy, quality_floor
from workbench.models.testbed import TRAIN_CONFIGS, TestbedSpec
from workbench.tasks.world import World, WorldConfig

pytestmark = pytest.mark.unit

WORLDS = [WorldConfig(seed=1, people=100), WorldConfig(seed=2, people=450), WorldConfig(seed=3, people=600, attributes=6),
          WorldConfig(seed=4, people=300, attributes=4), WorldConfig(seed=5, people=40, attributes=3)]


def _epochs(world: WorldConfig, steps: int) -> float:
    return steps * TRAIN_CONFIGS["dense"].batch_size / len(World(world).corpus())


@pytest.mark.parametrize("arch", ["dense", "moe"])
def test_steps_give_larger_worlds_the_default_worlds_epochs(arch):
    base = TRAIN_CONFIGS[arch].steps
    default = TestbedSpec.parse(f"testbed:{arch}")
    assert default.train_config.steps == base  # the default world's recipe is unchanged
    default_epochs = _epochs(default.world, base)
    for world in WORLDS:
        spec = TestbedSpec(arch, world)
        steps = spec.train_config.steps
        assert spec.twin().train_config.steps == steps  # the oracle twin trains as long
        if len(World(world).corpus()) > len(World(default.world).corpus()):
            assert _epochs(world, steps) == pytest.approx(default_epochs, rel=1e-3)
        else:  # a smaller world: at least the default world's steps (more epochs)
            assert steps == base and _epochs(world, steps) > default_epochs
    # explicit steps win, and are part of the cache key
    explicit = TestbedSpec.parse(f"testbed:{arch}?people=450&steps=123")
    assert explicit.train_config.steps == 123
    assert explicit.cache_path != TestbedSpec.parse(f"testbed:{arch}?people=450").cache_path


def test_bf16_only_on_cpus_that_compute_it(monkeypatch):
    spec = TestbedSpec.parse("testbed:dense")
    monkeypatch.setattr(train, "native_bf16", lambda: True)
    fast, fast_key = spec.train_config, spec.cache_path
    monkeypatch.setattr(train, "native_bf16", lambda: False)
    assert fast.precision == "bf16" and spec.train_config.precision == "fp32"
    assert spec.cache_path != fast_key  # other weights, another cache entry
    assert TestbedSpec.parse("testbed:moe").train_config.precision == "fp32"  # fp32 by recipe everywhere


def _table(trained, heldout, para, mcq, forget=None):
    cells = {"trained": GroupAccuracy(trained, 100), "heldout_qa": GroupAccuracy(heldout, 50),
             "unseen_para": GroupAccuracy(para, 50), "mcq": GroupAccuracy(mcq, 50)}
    table = {s: dict(cells) for s in ("forget", "retain", "neighbour")}
    if forget is not None:
        table["forget"] = {g: GroupAccuracy(forget, c.n) for g, c in cells.items()}
    return table


def test_floor_verdict_names_each_failed_line():
    good = _table(0.99, 0.95, 0.6, 0.97)
    oracle = _table(0.99, 0.95, 0.6, 0.97, forget=0.10)
    rows = quality_floor(good, oracle, chance_level=0.083)
    verdict = FloorVerdict("testbed:dense", tuple(rows))
    assert len(rows) == len(FLOOR) + 2 and verdict.met and verdict.summary() == "every floor line met"
    # held-out forms under 0.90 and an oracle that still knows the forget set
    bad = quality_floor(_table(0.99, 0.833, 0.6, 0.97), _table(0.99, 0.95, 0.6, 0.97, forget=0.5), 0.083)
    verdict = FloorVerdict("testbed:dense?people=450", tuple(bad))
    assert not verdict.met
    assert [r["metric"] for r in verdict.failed] == ["full held-out question/cloze", "oracle forget accuracy (all forms)"]
    assert verdict.summary().startswith("full held-out question/cloze 0.833 (target >= 0.90); oracle forget")
    assert verdict.to_dict()["met"] is False
    # an oracle under chance knows nothing of the forget set: that line is one-sided
    under = quality_floor(good, _table(0.99, 0.95, 0.6, 0.97, forget=0.0), 0.083)
    assert all(r["ok"] for r in under)
    # the oracle's retain accuracy must follow the full model's within 0.02
    drift = quality_floor(good, _table(0.95, 0.95, 0.6, 0.97, forget=0.1), 0.083)
    assert [r["metric"] for r in drift if r["ok"] is False] == ["oracle retain accuracy (trained forms)"]
