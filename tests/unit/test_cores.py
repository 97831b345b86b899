"""`workbench.cores`: every core unless WORKBENCH_CORES says fewer; a bad value names itself."""
import os

import pytest

from workbench.cores import ENV, cores
from workbench.errors import WorkbenchInputError

pytestmark = pytest.mark.unit


def test_unset_means_every_core(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert cores() == max(1, os.cpu_count() or 1)


def test_the_variable_caps_the_cores(monkeypatch):
    monkeypatch.setenv(ENV, "1")
    assert cores() == 1
    monkeypatch.setenv(ENV, " 3 ")
    assert cores() == 3


@pytest.mark.parametrize("bad", ["0", "-2", "two", "1.5"])
def test_a_bad_value_is_named_with_what_is_accepted(monkeypatch, bad):
    monkeypatch.setenv(ENV, bad)
    with pytest.raises(WorkbenchInputError, match=rf"WORKBENCH_CORES={bad!r}: expected a positive integer"):
        cores()
