"""A fuzz suite over every option a user can set (issue: safe by default): hypothesis draws a
config (every operator's, localiser's and probe family's, and the shared probe options), one
of its fields and a value of any type (text, numbers of any sign and size, NaN, infinities,
lists, booleans, None), and for each asserts one of two outcomes: a one-line
`WorkbenchInputError` that names the option, or a config holding exactly what was given (no
traceback, no silent change of meaning). The same for testbed spec options and study keys.
Cases per category: `FUZZ_EXAMPLES` each (the closing note of the issue quotes them)."""
from __future__ import annotations

import dataclasses
import math
import typing

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probes import FAMILIES, ProbeConfig
from probes.base import SharedProbeOptions
from workbench.edit import OPERATORS
from workbench.errors import WorkbenchInputError
from workbench.localise import LOCALISERS
from workbench.models.testbed import TestbedSpec
from workbench.registry import config_from_dict
from workbench.study.config import StudyError, parse_study

pytestmark = pytest.mark.unit
FUZZ_EXAMPLES = 400

CONFIGS = ([(f"operator {n}", OPERATORS.get(n).Config) for n in OPERATORS.names()]
           + [(f"localiser {n}", LOCALISERS.get(n).Config) for n in LOCALISERS.names()]
           + [(f"probe {n}", FAMILIES.get(n).Config) for n in FAMILIES.names()])
CONFIGS = [(label, cls) for label, cls in CONFIGS if [f for f in dataclasses.fields(cls) if f.init]]
ANY_VALUE = st.one_of(
    st.text(max_size=12), st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**12, 10**12),
    st.sampled_from([0, -1, 1, 0.5, -0.5, 2, 1e9, "nan", "inf", "-inf", "", "none", "true", "a,b", "0,1"]),
    st.lists(st.one_of(st.integers(-3, 3), st.text(max_size=3)), max_size=3), st.booleans(), st.none())
FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _numbers_in(value) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, str):
        try:
            return [float(value)]
        except ValueError:
            return []
    return []


def _accepted_as_given(cls, key: str, value, got) -> None:
    """An accepted value is the value given: numbers keep their value, a non-finite number is
    never stored, a Literal is one of its choices."""
    hint = typing.get_type_hints(cls)[key]
    if isinstance(got, float):
        assert math.isfinite(got), f"{key}={value!r} stored as {got!r}"
    numbers = _numbers_in(value)
    if numbers and isinstance(got, (int, float)) and not isinstance(got, bool):
        assert got == numbers[0], f"{key}={value!r} became {got!r}"
    if typing.get_origin(hint) is typing.Literal:
        assert got in typing.get_args(hint)


@FUZZ
@given(st.data())
def test_any_value_of_any_option_is_taken_as_given_or_refused_in_one_line(data):
    label, cls = data.draw(st.sampled_from(CONFIGS), label="config")
    key = data.draw(st.sampled_from([f.name for f in dataclasses.fields(cls) if f.init]), label="option")
    value = data.draw(ANY_VALUE, label="value")
    try:
        cfg = config_from_dict(cls, {key: value})
    except WorkbenchInputError as exc:
        assert "\n" not in str(exc) and key in str(exc), (label, key, value, str(exc))
        return
    _accepted_as_given(cls, key, value, getattr(cfg, key))


@FUZZ
@given(st.sampled_from([f.name for f in dataclasses.fields(SharedProbeOptions)]), ANY_VALUE)
def test_any_shared_probe_option_is_taken_as_given_or_refused_in_one_line(key, value):
    try:
        cfg = ProbeConfig.from_options({key: value})
    except WorkbenchInputError as exc:
        assert "\n" not in str(exc) and (key in str(exc) or "probe" in str(exc)), (key, value, str(exc))
        return
    if key != "families":
        _accepted_as_given(SharedProbeOptions, key, value, getattr(cfg, key))


SPEC_KEYS = ("seed", "people", "attributes", "forget", "neighbours", "oracle", "train_seed", "steps")
SPEC_VALUES = st.one_of(st.text(alphabet="0123456789.-+eainf", max_size=8), st.integers(-10**7, 10**7).map(str),
                        st.sampled_from(["nan", "inf", "-1", "0", "1e9", "", "0.5", "true"]))


@FUZZ
@given(st.sampled_from(SPEC_KEYS), SPEC_VALUES, st.sampled_from(["dense", "moe"]))
def test_any_testbed_spec_option_parses_or_is_refused_in_one_line(key, value, arch):
    spec = f"testbed:{arch}?{key}={value}"
    try:
        parsed = TestbedSpec.parse(spec)
    except WorkbenchInputError as exc:
        assert "\n" not in str(exc) and key in str(exc), (spec, str(exc))
        return
    world = parsed.world
    assert math.isfinite(world.forget) and math.isfinite(world.neighbours)
    assert parsed.steps is None or 1 <= parsed.steps <= 50_000
    assert TestbedSpec.parse(str(parsed)) == parsed  # what it prints names the same model


STUDY_KEYS = ("name", "seeds", "budgets", "threads", "description", "model", "localiser", "operator", "probes")


@FUZZ
@given(st.sampled_from(STUDY_KEYS), ANY_VALUE)
def test_any_study_key_is_taken_or_refused_in_one_line(key, value):
    data = {"name": "s", "model": [{"spec": "testbed:dense"}], "operator": [{"name": "ga"}], key: value}
    try:
        study = parse_study(data)
    except StudyError as exc:
        assert "\n" not in str(exc) and key in str(exc), (key, value, str(exc))
        return
    assert study.cells() and len({c.id for c in study.cells()}) == len(study.cells())  # no cell twice
