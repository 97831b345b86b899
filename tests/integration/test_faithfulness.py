"""Scientific behaviour on the default testbed: the faithfulness verdicts of the localisers
(`workbench.faithfulness`: held-out forget / neighbour / retain_eval facts, 20 random draws of the
same kind, stratified and excluding the top sites, budgets in parameters, 95% intervals over
people, a verdict word)."""
import pytest

from workbench.faithfulness import TABLE_RUNS, VERDICTS, ablation_check, expert_removal_check, sae_clamp_check
from workbench.localise import agreement, localise

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Measured on the AVX2 machine (testbed:dense, fp32 weights; scripts/faithfulness_intervals.py),
# at 1% and 5% of the eligible parameters: forget drop / random drop, the forget excess's
# interval, the neighbour and retain_eval drops, and the verdict.
#   selective             1%: 0.005/-0.001 [-0.001, 0.016] n 0.007 r -0.007  no effect
#                         5%: 0.030/-0.002 [ 0.003, 0.071] n 0.013 r 0.032   inconclusive
#   circuits[oct,neuron]  1%: 0.025/-0.002 [ 0.001, 0.058] n -0.005 r -0.004 inconclusive
#                         5%: 0.195/0.060  [ 0.041, 0.239] n 0.083 r 0.032   specific
#   circuits[flu]         1%: 0.070/-0.001 [ 0.018, 0.138] n 0.025 r 0.021   inconclusive
#                         5%: 0.330/0.018  [ 0.225, 0.396] n 0.195 r 0.189   specific
#   circuits[oct]         1% and 5%: one site, the last MLP's output (196,608 parameters, 19% of
#                         them): 0.800/0.211 [0.570, 0.605] n 0.800 r 0.764  unspecific
#   salun                 1%: 0.165/0.012  [ 0.078, 0.241] n 0.152 r 0.139   unspecific
#                         5%: 0.525/0.250  [ 0.185, 0.364] n 0.517 r 0.486   unspecific
#   wagle                 1%: 0.210/0.029  [ 0.117, 0.252] n 0.240 r 0.189   unspecific
#                         5%: 0.600/0.162  [ 0.362, 0.524] n 0.588 r 0.589   unspecific
#   concept (resolved)    1%: 0.005/-0.003 [-0.001, 0.023]                   no effect
#                         5%: 0.000/0.005  [-0.013, 0.002]                   no effect
#                         (causal filter: 4 of its top 20 candidates kept; the top-k entity
#                         scorer: [-0.001, 0.006] and [-0.025, 0.029], no effect)
#   random (weights)      1%: -0.010/-0.005 [-0.013, 0.000]                  no effect
#                         5%: -0.005/-0.003 [-0.017, 0.018]                  no effect
# Under the old check (site-count budgets, norm gains included, 5 draws, retain = training people)
# selective read "forget-specific" at 1% (0.288 vs retain 0.017): 10% of its top 1% of scalars
# were norm gains. Whether circuits' neurons are forget-specific differs between trainings (the
# AMX machine's bf16 weights gave other drops), so only what holds on any training is asserted.
BEYOND_RANDOM = ("circuits[oct,neuron]", "circuits[flu]", "circuits[oct]", "salun", "wagle")
# these break the neighbours and the retain-eval people as well: whole MLPs, the gradient's weights
UNSPECIFIC = ("circuits[oct]", "salun", "wagle")
# Measured failure, kept as a strict xfail so that a change that fixes it is noticed:
FAILING = {
    "concept": (*TABLE_RUNS["concept"], "no effect at 1% and 5% (forget excess [-0.001, 0.023] and [-0.013, 0.002], "
                "intervals below the 0.05 minimum effect): the testbed's forget people share their vocabulary with "
                "everyone else, and the scorer misses most of a planted signal (test_planted)"),
}


@pytest.fixture(scope="module")
def localisations(default_dense):
    task = default_dense.task()
    runs = {**TABLE_RUNS, "random": ("random", {})}
    return task, {label: localise(default_dense, task, m, o, progress=False) for label, (m, o) in runs.items()}


@pytest.fixture(scope="module")
def rows(default_dense, localisations):
    """label -> (row at 1%, row at 5%), each check run once (20 draws)."""
    task, locs = localisations
    return {label: tuple(ablation_check(default_dense, task, loc, budgets=(0.01, 0.05)))
            for label, loc in locs.items()}


@pytest.mark.parametrize("label", BEYOND_RANDOM)
def test_top_sites_beat_random_sites_of_the_same_kind_beyond_noise(label, rows):
    at5 = rows[label][1]
    assert at5.intervals["forget_excess"][0] > 0 and at5.forget_excess >= 0.05, at5.as_dict()
    assert at5.random_overlap == 0 and at5.params > 0


@pytest.mark.parametrize("label", UNSPECIFIC)
def test_what_every_fact_needs_reads_unspecific(label, rows):
    assert rows[label][1].verdict == "unspecific", rows[label][1].as_dict()


def test_ablating_the_last_mlp_output_reads_unspecific_not_pass(default_dense, rows, localisations):
    _, locs = localisations
    last = default_dense.model.config.num_hidden_layers - 1
    assert str(locs["circuits[oct]"].ranked()[0][0]) == f"blocks.{last}.hook_mlp_out"
    at1 = rows["circuits[oct]"][0]
    assert at1.n == 1 and at1.verdict == "unspecific", at1.as_dict()
    assert at1.neighbour_drop >= 0.5 and at1.retain_eval_drop >= 0.5  # it breaks everything


def test_a_random_localisation_is_never_specific(rows):
    for row in rows["random"]:
        assert row.verdict in VERDICTS and row.verdict != "specific", row.as_dict()
        assert row.intervals["forget_excess"][0] <= 0.02, row.as_dict()  # no excess over its own kind


@pytest.mark.parametrize("label", [pytest.param(k, marks=pytest.mark.xfail(strict=True, reason=v[2]))
                                   for k, v in FAILING.items()])
def test_localisers_that_miss_the_faithfulness_criterion(label, rows):
    assert any(row.verdict == "specific" for row in rows[label])


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


def test_clamping_selected_sae_features_beats_random_features(default_dense):
    """Conditional negative clamp (c = 50) of the top-20 SAEBench features vs 20 random features
    of similar firing rate (20 draws). Measured (AVX2): forget 0.245 vs random 0.068, excess
    [0.090, 0.266], but the neighbours' excess [0.032, 0.135] and retain_eval 0.107: `unspecific`
    (the old check, against the training retain people, read it as resolved)."""
    task = default_dense.task()
    loc = localise(default_dense, task, "sae", {}, progress=False)  # layer 1, the default SAE
    row = sae_clamp_check(default_dense, task, loc, n=20, c=50.0)
    assert row.intervals["forget_excess"][0] > 0 and row.forget_excess >= 0.05, row.as_dict()
    assert row.verdict != "no effect", row.as_dict()


def test_removing_the_top_affinity_expert_is_judged_with_intervals(default_moe):
    """UOE on testbed:moe: masking the top-affinity expert in its router against random experts
    of other layers (20 draws). Whether that expert carries the forget facts differs between two
    trainings of the same recipe (the AVX2 machine's: blocks.0.mlp.expert.1, forget 0.170 against
    random 0.022, excess [0.047, 0.255], but neighbours 0.168 and retain_eval 0.171: an expert
    every fact needs, `unspecific`), so this test asserts no direction: each drop lies in its
    interval, the verdict is the one `judge` gives, and the random experts are of other layers.
    Whether UOE finds an expert that does carry the facts is the planted-signal test's question."""
    from workbench.faithfulness import judge

    task = default_moe.task()
    loc = localise(default_moe, task, "experts", {}, progress=False)
    row = expert_removal_check(default_moe, task, loc)
    d = row.as_dict()
    for name in ("forget_drop", "neighbour_drop", "retain_eval_drop", "forget_random"):
        lo, hi = row.intervals[name]
        assert lo <= d[name] + 1e-9 and d[name] <= hi + 1e-9, (name, d)
    assert row.verdict == judge({**row.values, "intervals": row.intervals}) and row.verdict in VERDICTS
    top_layer = int(d["site"].split(".")[1])
    assert all(int(s.split(".")[1]) != top_layer for s in d["random_sites"]) and len(d["random_sites"]) == 20, d


def test_expert_removal_check_refuses_other_kinds_and_ablation_refuses_experts(default_moe, small_dense):
    task = default_moe.task()
    experts = localise(default_moe, task, "experts", {}, progress=False)
    with pytest.raises(ValueError, match="expert sites .workbench.faithfulness.check picks the check"):
        ablation_check(default_moe, task, experts)
    weights = localise(small_dense, small_dense.task(), "random", {}, progress=False)
    with pytest.raises(ValueError, match="takes an expert localisation; 'random' gives weight sites"):
        expert_removal_check(small_dense, small_dense.task(), weights)
