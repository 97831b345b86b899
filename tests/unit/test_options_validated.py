"""Every option is checked where it is declared: a value of the wrong type, not finite, of the
wrong sign or out of range fails with one line naming the option and what is accepted, before
any model loads (nothing is silently reinterpreted: `max_grad_norm=-1` would reverse the
gradient, `steps=-1` would cache an untrained model, `lr=nan` would train nothing)."""
from __future__ import annotations

import pytest

from probes import ProbeConfig
from workbench.edit import OPERATORS
from workbench.errors import WorkbenchInputError
from workbench.localise import LOCALISERS
from workbench.models.testbed import TestbedSpec
from workbench.registry import config_from_dict
from workbench.study.config import StudyError, parse_study

pytestmark = pytest.mark.unit

BAD_OPERATOR_OPTIONS = [
    ("ga", "max_grad_norm", "-1"), ("ga", "lr", "nan"), ("ga", "lr", "-5"), ("ga", "lr", "0"), ("ga", "steps", "-1"),
    ("ga", "batch_size", "0"), ("ga", "fraction", "2"), ("ga", "fraction", "0"), ("ga", "weight_decay", "-0.1"),
    ("ga", "forget_weight", "inf"), ("ga", "k", "0"), ("ga", "collapse_retain", "1.5"), ("graddiff", "retain_weight", "-1"),
    ("graddiff", "retain_similar", "2"), ("npo", "beta", "0"), ("simnpo", "beta", "-2.5"), ("rmu", "alpha", "-1"),
    ("ablate", "fraction", "1.5"), ("ablate", "k", "0"), ("ablate", "bank", "0"), ("needle", "sigma", "-1"),
    ("lunar", "ridge", "0"), ("directional", "max_facts", "0"), ("remove-experts", "k", "0"),
]


@pytest.mark.parametrize("name, key, value", BAD_OPERATOR_OPTIONS, ids=lambda x: str(x))
def test_a_bad_operator_option_is_refused_naming_it(name, key, value):
    with pytest.raises(WorkbenchInputError, match=f"option {key}="):
        config_from_dict(OPERATORS.get(name).Config, {key: value})


@pytest.mark.parametrize("name, key, value", [
    ("wagle", "gamma", "nan"), ("wagle", "gamma", "0"), ("salun", "batch_size", "0"), ("selective", "eps", "-1"),
    ("circuits", "probe_threshold", "2"), ("circuits", "noise_scale", "-3"), ("circuits", "max_facts", "0"),
])
def test_a_bad_localiser_option_is_refused_naming_it(name, key, value):
    with pytest.raises(WorkbenchInputError, match=f"option {key}="):
        config_from_dict(LOCALISERS.get(name).Config, {key: value})


@pytest.mark.parametrize("options, key", [
    ({"relearn.lr": "-1"}, "lr"), ({"relearn.batch": "0"}, "batch"), ({"relearn.steps": "-1"}, "steps"),
    ({"max_facts": "1"}, "max_facts"), ({"noise_floor": "maybe"}, "noise_floor"), ({"muse.mink_k": "nan"}, "mink_k"),
])
def test_a_bad_probe_option_is_refused_naming_it(options, key):
    with pytest.raises(WorkbenchInputError, match=f"option {key}="):
        ProbeConfig.from_options(options)


@pytest.mark.parametrize("spec, says", [
    ("testbed:dense?steps=-1", "steps=-1: expected 1..50,000"), ("testbed:dense?steps=10000000", "steps=10000000"),
    ("testbed:dense?neighbours=inf", "neighbours"), ("testbed:dense?neighbours=nan", "neighbours"),
    ("testbed:dense?train_seed=-1", "train_seed=-1"), ("testbed:dense?people=3", "people"),
])
def test_a_bad_testbed_spec_is_refused_naming_the_option(spec, says):
    with pytest.raises(WorkbenchInputError, match=says.replace("?", r"\?")):
        TestbedSpec.parse(spec)


def _study(**over):
    return {"name": "s", "model": [{"spec": "testbed:dense"}], "operator": [{"name": "ga"}], **over}


@pytest.mark.parametrize("over, key", [
    ({"name": ".."}, "name"), ({"name": "../x"}, "name"), ({"seeds": [0, 0]}, "seeds"), ({"budgets": [0.05, 0.05]}, "budgets"),
    ({"seeds": [-1]}, "seeds"), ({"operator": [{"name": "ga", "options": {"lr": float("nan")}}]}, "lr"),
    ({"operator": [{"name": "ga", "options": {"lr": -5}}]}, "lr"),
])
def test_a_bad_study_file_is_refused_naming_the_key(over, key):
    with pytest.raises(StudyError, match=key):
        parse_study(_study(**over))
