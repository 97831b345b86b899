"""Scientific behaviour on the default testbed: a localiser's top sites matter for the
forget facts more than random sites of the same kind and budget (mean of 5 draws)."""
import pytest

from workbench.faithfulness import TABLE_RUNS, ablation_check, expert_removal_check, sae_clamp_check
from workbench.localise import agreement, localise

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# What holds on any machine these models are trained on (the weights, and with them every
# drop, differ from one CPU to another), measured on testbed:dense with 200 facts per split and
# 5 random draws, judged with 95% intervals over people (the default world has 20 forget
# people, which bounds the power). Measured on the AVX2 machine (fp32 weights), forget / retain
# drop at 1% and 5% of the site kind, and the interval of forget minus retain:
#   selective             0.297/0.008 [0.14, 0.45]    0.453/0.077 [0.23, 0.53]   forget-specific
#   circuits[oct,neuron]  0.013/0.005 [-0.01, 0.03]   0.063/0.042 [-0.03, 0.07]  beyond random only
#   circuits[flu]         0.012/0.024 [-0.04, 0.01]   0.120/0.107 [-0.06, 0.10]  beyond random only
#   circuits[oct]         0.997/0.990 [-0.00, 0.01]   0.997/0.990                every fact
#   salun                 0.722/0.627 [0.00, 0.18]    0.978/0.940 [0.01, 0.06]   every fact (a hair more forget)
#   wagle                 0.848/0.816 [-0.03, 0.09]   0.985/0.974 [-0.01, 0.03]  every fact
# (the AMX machine's bf16 weights gave OCT neurons 0.252/0.058 and FLU 0.302/0.148 at 5%: whether
# circuits' neurons are forget-specific differs between trainings; beyond random they are on both.)
BEYOND_RANDOM = {k: v for k, v in TABLE_RUNS.items() if k != "concept"}
FORGET_SPECIFIC = ("selective",)
# These find what every fact needs: far beyond random sites, but retain falls about as far as forget.
EVERY_FACT = ("circuits[oct]", "salun", "wagle")
# Measured failure, kept as a strict xfail so that a change that fixes it is noticed:
FAILING = {
    "concept": (*TABLE_RUNS["concept"], "forget drop 0.002 (1%) and 0.010 (5%) against random 0.002 and 0.005: the "
                "testbed's forget people have no vocabulary of their own (a world with a unique nickname each, "
                "branch exp-nicknames, did not help either: see the closing note of issue 3)"),
}


@pytest.fixture(scope="module")
def localisations(default_dense):
    task = default_dense.task()
    runs = {**BEYOND_RANDOM, **{k: v[:2] for k, v in FAILING.items()}}
    return task, {label: localise(default_dense, task, m, o, progress=False) for label, (m, o) in runs.items()}


@pytest.fixture(scope="module")
def rows(default_dense, localisations):
    """label -> (row at 1%, row at 5%), each check run once."""
    task, locs = localisations
    return {label: tuple(ablation_check(default_dense, task, loc, budgets=(0.01, 0.05), draws=5))
            for label, loc in locs.items()}


@pytest.mark.parametrize("label", list(BEYOND_RANDOM))
def test_top_sites_beat_random_sites_beyond_noise(label, rows):
    at1, at5 = rows[label]
    # at 5%: forget falls more than twice as far as with random sites, for the whole interval
    assert at5.intervals["excess_over_random"][0] > 0 and at5.forget_drop >= 0.05, at5.as_dict()
    for row in (at1, at5):  # and never significantly less for forget than for retain
        assert row.intervals["forget_minus_retain"][1] > 0, row.as_dict()


@pytest.mark.parametrize("label", FORGET_SPECIFIC)
def test_forget_specific_localisers_meet_the_criterion_beyond_noise(label, rows):
    for row in rows[label]:
        assert row.resolved, row.as_dict()  # >= 2x random and more than retain, for the whole interval


@pytest.mark.parametrize("label", EVERY_FACT)
def test_localisers_that_find_what_every_fact_needs(label, rows):
    for row in rows[label]:
        assert row.forget_drop >= 2 * row.random_forget_drop + 0.1, row.as_dict()  # far beyond random ...
        assert row.retain_drop >= row.forget_drop / 1.5, row.as_dict()  # ... but retain falls about as far


@pytest.mark.parametrize("label", [pytest.param(k, marks=pytest.mark.xfail(strict=True, reason=v[2]))
                                   for k, v in FAILING.items()])
def test_localisers_that_miss_the_faithfulness_criterion(label, rows):
    assert all(row.passed for row in rows[label])


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


def test_removing_the_top_affinity_expert_is_judged_with_intervals(default_moe):
    """UOE on testbed:moe: masking the top-affinity expert in its router against random experts
    of other layers (mean of 5 draws). Whether that expert carries the forget facts differs
    between two trainings of the same recipe (the AMX machine's MoE: forget drop 0.007 against
    0.050 for random experts; the AVX2 machine's: blocks.0.mlp.expert.1, forget 0.250
    [0.123, 0.393] against random 0.023, but retain 0.218 [0.158, 0.284]: an expert every fact
    needs, not a forget expert), so this test asserts no direction: the check reports each drop
    inside its 95% interval over people, and its verdict follows the intervals. Whether UOE finds an expert that does carry them needs a
    planted signal (issue 18)."""
    task = default_moe.task()
    loc = localise(default_moe, task, "experts", {}, progress=False)
    row = expert_removal_check(default_moe, task, loc, draws=5)
    iv = row["intervals"]
    for name in ("forget_drop", "retain_drop", "random_forget_drop"):
        assert iv[name][0] <= row[name] + 1e-9 and row[name] <= iv[name][1] + 1e-9, (name, row)
    assert row["resolved"] == (iv["excess_over_random"][0] > 0 and iv["forget_minus_retain"][0] > 0), row
    top_layer = int(row["site"].split(".")[1])
    assert all(int(s.split(".")[1]) != top_layer for s in row["random_sites"]), row


def test_expert_removal_check_refuses_other_kinds_and_ablation_refuses_experts(default_moe, small_dense):
    task = default_moe.task()
    experts = localise(default_moe, task, "experts", {}, progress=False)
    with pytest.raises(ValueError, match="expert sites .workbench.faithfulness.check picks the check"):
        ablation_check(default_moe, task, experts)
    weights = localise(small_dense, small_dense.task(), "random", {}, progress=False)
    with pytest.raises(ValueError, match="takes an expert localisation; 'random' gives weight sites"):
        expert_removal_check(small_dense, small_dense.task(), weights)
