"""Scientific behaviour on the default testbed: a localiser's top sites matter for the
forget facts more than random sites of the same kind and budget (mean of 5 draws)."""
import pytest

from workbench.faithfulness import ablation_check, expert_removal_check, sae_clamp_check
from workbench.localise import agreement, localise

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# What holds on any machine these models are trained on (the weights, and with them every
# drop, differ from one CPU to another), measured on testbed:dense with 200 facts per split and
# 5 random draws. Forget-specific localisers meet the criterion (forget falls at least twice as
# far as with random sites, and further than retain) at 1% and 5% of their site kind, and at 5%,
# where the effect is above noise, forget falls at least 1.5x as far as retain. Measured here,
# forget / retain drop at 1% and 5%: OCT neurons 0.018/0.004, 0.132/0.058; FLU 0.023/0.014,
# 0.215/0.072; selective 0.235/0.058, 0.360/0.163 (on the machine of the first measurement:
# 0.020/0.002, 0.252/0.058; 0.058/0.018, 0.302/0.148; 0.112/0.010, 0.485/0.128).
SPECIFIC = {
    "circuits[oct,neuron]": ("circuits", {"mode": "oct", "nodes": "neuron"}),
    "circuits[flu]": ("circuits", {"mode": "flu"}),
    "selective": ("selective", {}),
}
# These find what every fact needs: far beyond random sites, but retain falls about as far as
# forget (whether a hair less or a hair more is noise: OCT's top node, the last MLP output,
# 0.998/0.999 here and 0.997/0.994 before; SalUn 0.712/0.609 and 0.633/0.610 at 1%; WAGLE
# 0.897/0.870 and 0.890/0.898).
NOT_SPECIFIC = {
    "circuits[oct]": ("circuits", {}),
    "salun": ("salun", {}),
    "wagle": ("wagle", {}),
}
# Measured failure, kept as a strict xfail so that a change that fixes it is noticed:
FAILING = {
    "concept": ("concept", {}, "forget drop 0.002 (1%) and 0.010 (5%) against random 0.002 and 0.005: the "
                "testbed's forget people have no vocabulary of their own (a world with a unique nickname each, "
                "branch exp-nicknames, did not help either: see the closing note of issue 3)"),
}


@pytest.fixture(scope="module")
def localisations(default_dense):
    task = default_dense.task()
    runs = {**SPECIFIC, **NOT_SPECIFIC, **{k: v[:2] for k, v in FAILING.items()}}
    return task, {label: localise(default_dense, task, m, o, progress=False) for label, (m, o) in runs.items()}


def _rows(loaded, task, loc):
    return ablation_check(loaded, task, loc, budgets=(0.01, 0.05), draws=5)


@pytest.mark.parametrize("label", list(SPECIFIC))
def test_forget_specific_localisers_meet_the_criterion_with_a_margin(label, default_dense, localisations):
    task, locs = localisations
    rows = _rows(default_dense, task, locs[label])
    for row in rows:
        assert row.passed, row.as_dict()  # >= 2x random, and retain falls less than forget
    at5 = rows[1]
    assert at5.forget_drop >= 0.05 and at5.forget_drop >= 1.5 * at5.retain_drop, at5.as_dict()


@pytest.mark.parametrize("label", list(NOT_SPECIFIC))
def test_localisers_that_find_what_every_fact_needs(label, default_dense, localisations):
    task, locs = localisations
    for row in _rows(default_dense, task, locs[label]):
        assert row.forget_drop >= 2 * row.random_forget_drop + 0.1, row.as_dict()  # far beyond random
        assert row.retain_drop >= row.forget_drop / 1.5, row.as_dict()  # but not forget-specific


@pytest.mark.parametrize("label", [pytest.param(k, marks=pytest.mark.xfail(strict=True, reason=v[2]))
                                   for k, v in FAILING.items()])
def test_localisers_that_miss_the_faithfulness_criterion(label, default_dense, localisations):
    task, locs = localisations
    assert all(row.passed for row in _rows(default_dense, task, locs[label]))


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
    task = default_dense.task()
    loc = localise(default_dense, task, "sae", {}, progress=False)  # layer 1, the default SAE
    row = sae_clamp_check(default_dense, task, loc, n=n, c=50.0, draws=5)
    assert row["forget_drop"] >= 2 * row["random_forget_drop"] and row["forget_drop"] > 0.03, row
    assert row["retain_drop"] < row["forget_drop"], row


@pytest.mark.xfail(strict=True, reason=(
    "measured: removing the top-affinity expert does not remove the forget facts. 4,000-step MoE: "
    "blocks.2.mlp.expert.1 drops forget accuracy by 0.007 against 0.050 for random experts of other layers; "
    "2,400 steps: 0.002 vs 0.020 (the single-threaded recipe 1: 0.173 vs 0.011); the experts are not "
    "specialised to the forget people"))
def test_removing_the_top_affinity_expert_beats_random_experts_of_other_layers(default_moe):
    """UOE on testbed:moe: masking the top-affinity expert in its router lowers forget accuracy
    more than masking a random expert of another layer (mean of 5 draws)."""
    task = default_moe.task()
    loc = localise(default_moe, task, "experts", {}, progress=False)
    row = expert_removal_check(default_moe, task, loc, draws=5)
    assert row["forget_drop"] > row["random_forget_drop"] + 0.05, row


def test_expert_removal_check_refuses_other_kinds_and_ablation_refuses_experts(default_moe, small_dense):
    task = default_moe.task()
    experts = localise(default_moe, task, "experts", {}, progress=False)
    with pytest.raises(ValueError, match="expert sites .workbench.faithfulness.check picks the check"):
        ablation_check(default_moe, task, experts)
    weights = localise(small_dense, small_dense.task(), "random", {}, progress=False)
    with pytest.raises(ValueError, match="takes an expert localisation; 'random' gives weight sites"):
        expert_removal_check(small_dense, small_dense.task(), weights)
