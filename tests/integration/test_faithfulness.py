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


def test_default_saes_reconstruct_with_few_active_features(default_dense):
    """sae-lens TopK SAEs on two residual layers: explained variance >= 0.7 with L0 <= 64."""
    from workbench.sae import SAEConfig, train_sae

    for layer in (1, 2):
        _, metrics, _, _ = train_sae(default_dense, SAEConfig(layer=layer), progress=False)
        assert metrics["explained_variance"] >= 0.7 and metrics["l0"] <= 64, (layer, metrics)


@pytest.mark.parametrize("n", [10, 20])
def test_clamping_selected_sae_features_beats_random_features(n, default_dense):
    """Conditional negative clamp (c = 50) of the top-N SAEBench features vs N random features
    of similar firing rate (mean of 5 draws)."""
    from workbench.localise.sae import clamp_check

    task = default_dense.task()
    loc = localise(default_dense, task, "sae", {}, progress=False)  # layer 1, the default SAE
    row = clamp_check(default_dense, task, loc, n=n, c=50.0, draws=5)
    assert row["forget_drop"] >= 2 * row["random_forget_drop"] and row["forget_drop"] > 0.03, row
    assert row["retain_drop"] < row["forget_drop"], row


@pytest.mark.xfail(strict=True, reason=(
    "measured regression with testbed recipe 2 (single-threaded, 2,400-step MoE): removing the "
    "top-affinity expert (layer 2, expert 0) drops forget accuracy by 0.002 against 0.020 for random "
    "experts of other layers (recipe 1: 0.173 vs 0.011); UOE's selection is not faithful on this MoE"))
def test_removing_the_top_affinity_expert_beats_random_experts_of_other_layers(default_moe):
    """UOE on testbed:moe: masking the top-affinity expert in its router lowers forget accuracy
    more than masking a random expert of another layer (mean of 5 draws)."""
    import random

    import torch

    from workbench.edit import apply_operator
    from workbench.localise import Localisation
    from workbench.localise.faithfulness import accuracies, eval_examples
    from workbench.sites import ExpertSite

    task = default_moe.task()
    examples = eval_examples(task, 200)
    base = accuracies(default_moe, task, examples=examples)
    loc = localise(default_moe, task, "experts", {}, progress=False)
    top = loc.top(k=1)[0]

    def forget_drop(site):
        one = Localisation("expert", (site,), torch.ones(1), {"localiser": "fixed"})
        with apply_operator(default_moe, one, task, "remove-experts", {"k": 1}).applied(default_moe.model):
            return base["forget"] - accuracies(default_moe, task, examples=examples)["forget"]

    cfg = default_moe.model.config
    others = [ExpertSite(L, e) for L in range(cfg.num_hidden_layers) if L != top.layer
              for e in range(cfg.num_local_experts)]
    random_drops = [forget_drop(s) for s in random.Random(0).sample(others, 5)]
    assert forget_drop(top) > sum(random_drops) / len(random_drops) + 0.05, (top, random_drops)
