"""Scientific behaviour on the default testbed: a localiser's top sites matter for the
forget facts more than random sites of the same kind and budget (mean of 5 draws)."""
import pytest

from workbench.localise import agreement, faithfulness, localise

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Issue "Localisers I", measured on testbed:dense: ablating the top sites at 1% and 5% of the
# site kind lowers forget accuracy >= 2x as much as random sites (mean of 5 draws), and retain
# accuracy drops less than forget accuracy.
# Forget-specific: they meet it with a margin, forget dropping at least twice as much as retain
# (measured, forget / retain drop at 1% and 5%: OCT neurons 0.020/0.002, 0.252/0.058; FLU
# 0.058/0.018, 0.302/0.148; selective 0.112/0.010, 0.485/0.128).
SPECIFIC = {
    "circuits[oct,neuron]": ("circuits", {"mode": "oct", "nodes": "neuron"}),
    "circuits[flu]": ("circuits", {"mode": "flu"}),
    "selective": ("selective", {}),
}
# They meet the criterion's letter, but retain falls almost as far as forget: what they find is
# needed by every fact (OCT's top node, the last MLP output: 0.997/0.994; SalUn 0.633/0.610 at 1%,
# 0.988/0.986 at 5%). The margin is within sampling noise (WAGLE's flips with the sample, below).
LITERAL = {
    "circuits[oct]": ("circuits", {}),
    "salun": ("salun", {}),
}
# Measured failures, kept as strict xfails so that a change that fixes them is noticed:
FAILING = {
    "concept": ("concept", {}, "forget drop -0.002 (1%) and 0.007 (5%) against random 0.001 and 0.008: the "
                "testbed's forget people have no vocabulary of their own (a world with a unique nickname each, "
                "branch exp-nicknames, did not help either: see the closing note of issue 3)"),
    "wagle": ("wagle", {}, "zeroing the top 1% of weights: retain drop 0.8975 > forget drop 0.890 (random "
              "0.002); WAGLE picks weights every fact needs (embeddings, layer-0 attention)"),
}


@pytest.fixture(scope="module")
def localisations(default_dense):
    task = default_dense.task()
    runs = {**SPECIFIC, **LITERAL, **{k: v[:2] for k, v in FAILING.items()}}
    return task, {label: localise(default_dense, task, m, o, progress=False) for label, (m, o) in runs.items()}


def _check_criterion(loaded, task, loc, retain_factor: float = 1.0):
    rows = faithfulness(loaded, task, loc, budgets=(0.01, 0.05), draws=5)
    for row in rows:
        assert row.forget_drop >= 2 * row.random_forget_drop and row.forget_drop > 0, row.as_dict()
        assert row.retain_drop * retain_factor < row.forget_drop, row.as_dict()
    assert rows[1].forget_drop >= 0.05, rows[1].as_dict()  # at 5% the effect is not noise


@pytest.mark.parametrize("label", list(SPECIFIC))
def test_forget_specific_localisers_meet_the_criterion_with_a_margin(label, default_dense, localisations):
    task, locs = localisations
    _check_criterion(default_dense, task, locs[label], retain_factor=2.0)


@pytest.mark.parametrize("label", list(LITERAL))
def test_localisers_that_meet_only_the_letter_of_the_criterion(label, default_dense, localisations):
    task, locs = localisations
    _check_criterion(default_dense, task, locs[label])


@pytest.mark.parametrize("label", [pytest.param(k, marks=pytest.mark.xfail(strict=True, reason=v[2]))
                                   for k, v in FAILING.items()])
def test_localisers_that_miss_the_faithfulness_criterion(label, default_dense, localisations):
    task, locs = localisations
    _check_criterion(default_dense, task, locs[label])


def test_weight_saliency_beats_random_weights(default_dense, localisations):
    """WAGLE's half of the criterion that does hold: far beyond random weights at both budgets."""
    task, locs = localisations
    for row in faithfulness(default_dense, task, locs["wagle"], budgets=(0.01, 0.05), draws=5):
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
    from workbench.edit.checks import expert_removal_check

    task = default_moe.task()
    loc = localise(default_moe, task, "experts", {}, progress=False)
    row = expert_removal_check(default_moe, task, loc, draws=5)
    assert row["forget_drop"] > row["random_forget_drop"] + 0.05, row


def test_expert_removal_check_refuses_other_kinds_and_faithfulness_refuses_experts(default_moe, small_dense):
    from workbench.edit.checks import expert_removal_check

    task = default_moe.task()
    experts = localise(default_moe, task, "experts", {}, progress=False)
    with pytest.raises(ValueError, match="expert sites: use workbench.edit.checks.expert_removal_check"):
        faithfulness(default_moe, task, experts)
    weights = localise(small_dense, small_dense.task(), "random", {}, progress=False)
    with pytest.raises(ValueError, match="takes an expert localisation; 'random' gives weight sites"):
        expert_removal_check(small_dense, small_dense.task(), weights)
