"""Model specs: round trip, clear errors, hub ids fail fast offline."""
import time

import pytest

from workbench.models import parse_kind
from workbench.models.testbed import TestbedSpec

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("text", ["testbed:dense", "testbed:moe", "testbed:dense?oracle=1",
                                  "testbed:dense?seed=7&people=300", "testbed:moe?train_seed=2&oracle=1",
                                  "testbed:dense?attributes=3&forget=0.2&steps=100"])
def test_spec_round_trip(text):
    spec = TestbedSpec.parse(text)
    assert TestbedSpec.parse(str(spec)) == spec


def test_oracle_twin_and_seed_change_the_cache_key():
    base = TestbedSpec.parse("testbed:dense")
    oracle = base.twin()
    assert oracle.oracle and oracle.world == base.world
    second = base.twin(train_seed=1)
    keys = {base.cache_path, oracle.cache_path, second.cache_path}
    assert len(keys) == 3
    assert TestbedSpec.parse("testbed:dense?seed=0").cache_path == base.cache_path


@pytest.mark.parametrize("text,needle", [
    ("testbed:tiny", "unknown testbed"), ("testbed:dense?colour=red", "unknown option"),
    ("testbed:dense?people=many", "bad value"), ("testbed:dense?people=3", "people"),
    ("testbed:dense?oracle=maybe", "bad value"), ("testbed:", "expected"),
    ("testbed:dense?people", "malformed"),
])
def test_bad_testbed_specs(text, needle):
    with pytest.raises(ValueError, match=needle) as err:
        TestbedSpec.parse(text)
    assert repr(text) in str(err.value)


@pytest.mark.parametrize("text", ["nonsense:thing", "", "   ", "a/b/c", "smollm2"])
def test_unknown_models_name_the_accepted_forms(text):
    with pytest.raises(ValueError) as err:
        parse_kind(text)
    assert "testbed:dense" in str(err.value) and repr(text) in str(err.value)


def test_kinds():
    assert parse_kind("testbed:moe?oracle=1") == "testbed"
    assert parse_kind("smollm2-135m-instruct") == "smollm2"
    assert parse_kind("HuggingFaceTB/SmolLM2-360M") == "hub"


def test_hub_id_fails_fast_offline(monkeypatch, tmp_path):
    from workbench.models import load

    monkeypatch.setenv("HF_HOME", str(tmp_path))
    start = time.time()
    with pytest.raises(ValueError, match="cannot be reached") as err:
        load("some-org/some-model-that-is-not-cached")
    assert time.time() - start < 15
    assert "--local-dir" in str(err.value)
