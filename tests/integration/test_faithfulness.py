"""Scientific behaviour on the default testbed: a localiser's top sites matter for the
forget facts more than random sites of the same kind and budget (mean of 5 draws)."""
import pytest

from workbench.localise import agreement, faithfulness, localise

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Fully faithful on testbed:dense: forget drop >= 2x random at 1% and 5%, retain drop < forget drop.
SPECIFIC = {
    "circuits[oct,neuron]": ("circuits", {"mode": "oct", "nodes": "neuron"}),
    "circuits[flu]": ("circuits", {"mode": "flu"}),
    "selective": ("selective", {}),
}
# Weight saliency maps pick weights every fact needs (embeddings, layer-0 attention): zeroing
# them beats random by far, but retain falls as much as forget (see the closing note).
BEATS_RANDOM = {"wagle": ("wagle", {}), "salun": ("salun", {})}


@pytest.fixture(scope="module")
def localisations(default_dense):
    task = default_dense.task()
    return task, {label: localise(default_dense, task, m, o, progress=False)
                  for label, (m, o) in {**SPECIFIC, **BEATS_RANDOM}.items()}


@pytest.mark.parametrize("label", list(SPECIFIC))
def test_top_sites_are_specific_to_the_forget_facts(label, default_dense, localisations):
    task, locs = localisations
    rows = faithfulness(default_dense, task, locs[label], budgets=(0.01, 0.05), draws=5)
    for row in rows:
        assert row.forget_drop >= 2 * row.random_forget_drop and row.forget_drop > 0, row.as_dict()
        assert row.retain_drop < row.forget_drop, row.as_dict()
    assert rows[1].forget_drop >= 0.05  # at 5% the effect is not noise


@pytest.mark.parametrize("label", list(BEATS_RANDOM))
def test_weight_saliency_beats_random_weights(label, default_dense, localisations):
    task, locs = localisations
    for row in faithfulness(default_dense, task, locs[label], budgets=(0.01, 0.05), draws=5):
        assert row.forget_drop >= 2 * row.random_forget_drop and row.forget_drop > 0.1, row.as_dict()


def test_agreement_table_covers_every_pair(localisations):
    _, locs = localisations
    rows = agreement(locs, k=3)
    n = len(locs)
    assert len(rows) == n * (n - 1) // 2
    for r in rows:
        assert 0.0 <= r["jaccard@3"] <= 1.0 and -1.0 <= r["spearman"] <= 1.0
    wagle_salun = next(r for r in rows if {r["a"], r["b"]} == {"wagle", "salun"})
    assert wagle_salun["spearman"] > 0.5  # both rank by the forget gradient
