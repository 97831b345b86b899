"""Scientific behaviour of editing on the default testbed, against the oracle."""
import pytest

from workbench.edit import apply_operator
from workbench.localise import localise
from workbench.models.knowledge import heldout_accuracy

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_localised_edit_reaches_oracle_level_forgetting(default_dense, default_dense_oracle):
    """WAGLE mask (50% of the weights) + the mechanistic-unlearning loss with a hard retain
    term: forget <= oracle + 0.05, retain >= 95% and neighbour >= 90% of the original, on what
    the edit never read (forget facts in the evaluation forms, the retain-eval people)."""
    task = default_dense.task()
    acc = lambda m: heldout_accuracy(m.model, m.tokenizer, task)  # noqa: E731
    original, oracle = acc(default_dense), acc(default_dense_oracle)
    loc = localise(default_dense, task, "wagle", {}, progress=False)
    edit = apply_operator(default_dense, loc, task, "mu", {"fraction": 0.5, "retain_weight": 5, "retain_similar": 0.75,
                                                           "steps": 150, "lr": 3e-4}, progress=False)
    with edit.applied(default_dense.model):
        edited = acc(default_dense)
    assert edited["forget"] <= oracle["forget"] + 0.05, (edited, oracle)
    assert edited["retain"] >= 0.95 * original["retain"], (edited, original)
    assert edited["neighbour"] >= 0.90 * original["neighbour"], (edited, original)
    assert acc(default_dense) == original  # the edit is gone after its scope
