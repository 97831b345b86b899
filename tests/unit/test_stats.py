"""Intervals and the papers' metric conventions, worked by hand: no model needed."""
import math
import random

import pytest

from probes import Metric, ProbeResult
from workbench.stats import (
    auc, auc_statistic, cluster_bootstrap, difference_interval, mean_interval, paired_items, privleak)

pytestmark = pytest.mark.unit


def test_privleak_follows_muse_and_open_unlearning():
    # open-unlearning privacy.py: score, ref = 1 - AUC, 1 - AUC_ref; (score - ref) / ref * 100
    assert privleak(1.0, 0.5) == pytest.approx(-100.0)  # members fully exposed: MUSE prints -100
    assert privleak(0.5, 0.5) == pytest.approx(0.0)  # as the oracle
    assert privleak(0.8, 0.6) == pytest.approx(((1 - 0.8) - (1 - 0.6)) / (1 - 0.6) * 100)  # -50
    assert privleak(0.8, 0.6) == pytest.approx(-50.0)
    assert privleak(0.3, 0.5) == pytest.approx(40.0)  # over-unlearned: members look less familiar
    assert math.isnan(privleak(0.9, 1.0))  # an oracle that separates perfectly gives no reference


def test_auc_is_mann_whitney_with_half_ties():
    assert auc([3, 4, 5], [0, 1, 2]) == 1.0
    assert auc([1, 3], [2, 2]) == pytest.approx(0.5)  # one of two pairs above, one below
    assert auc([2], [2, 1]) == pytest.approx(0.75)  # a tie counts half


def test_the_bootstrap_resamples_whole_clusters():
    # two people: one always right, one always wrong; any resample holds whole people, so the
    # mean is 0, 0.5 or 1 (with 1 item each) or weighted by their item counts
    values, people = [1, 1, 1, 0], ["a", "a", "a", "b"]
    seen = set()
    cluster_bootstrap(people, lambda idx: seen.add(tuple(sorted(idx))) or 0.0, draws=200)
    assert seen == {(0, 1, 2, 3), (0, 0, 1, 1, 2, 2), (3, 3)}
    lo, hi = mean_interval(values, people, draws=2000)
    assert lo == 0.0 and hi == 1.0


def test_the_interval_narrows_with_more_people_and_covers_the_truth():
    rng = random.Random(1)

    def sample(n_people):
        values, people = [], []
        for p in range(n_people):
            skill = rng.random() < 0.7
            for _ in range(3):
                values.append(1.0 if (rng.random() < 0.9) == skill else 0.0)
                people.append(p)
        return values, people

    small = mean_interval(*sample(10))
    large = mean_interval(*sample(400))
    assert large[1] - large[0] < (small[1] - small[0]) / 3  # about 1/sqrt(40) as wide
    truth = 0.7 * 0.9 + 0.3 * 0.1
    assert large[0] < truth < large[1]


def test_the_same_inputs_give_the_same_interval():
    values, people = [1, 0, 1, 1, 0, 1], [0, 0, 1, 1, 2, 2]
    assert mean_interval(values, people) == mean_interval(values, people)


def test_one_cluster_gives_no_interval_and_level_is_checked():
    assert all(math.isnan(x) for x in mean_interval([1, 0], ["a", "a"]))
    with pytest.raises(ValueError, match="level=1.5"):
        cluster_bootstrap([0, 1], lambda idx: 0.0, level=1.5)
    with pytest.raises(ValueError, match="3 values but 2 cluster labels"):
        mean_interval([1, 0, 1], ["a", "b"])


def test_auc_interval_resamples_members_and_non_members_of_a_person_together():
    # person p's member scores 1.0 and non-member 0.0 (separated); person q's the reverse
    clusters, is_member = paired_items(["p", "q"], ["p", "q"])
    stat = auc_statistic([1.0, 0.0, 0.0, 1.0], is_member)
    assert stat([0, 1, 2, 3]) == pytest.approx(0.5)
    assert stat([0, 0, 2, 2]) == 1.0  # p drawn twice: separated
    lo, hi = cluster_bootstrap(clusters, stat, draws=500)
    assert lo == 0.0 and hi == 1.0


def test_the_table_prints_intervals_and_says_what_they_are():
    m = Metric("muse.auc.mink", "muse", "reference", {"original": 0.91, "oracle": 0.52},
               intervals={"original": [0.85, 0.97], "oracle": [0.41, 0.63]})
    r = ProbeResult(task="t", task_hash="h", models={"original": "m", "oracle": "o"}, metrics=[m])
    text = r.table()
    assert "0.910 [0.850, 0.970]" in text and "0.520 [0.410, 0.630]" in text
    assert "95% bootstrap interval over the people" in text
    assert r.interval("muse.auc.mink", "oracle") == (0.41, 0.63)
    rec = next(x for x in r.records() if x["role"] == "original")
    assert (rec["low"], rec["high"]) == (0.85, 0.97)
    m.intervals["oracle"] = [float("nan"), float("nan")]
    assert r.interval("muse.auc.mink", "oracle") is None


def test_a_difference_of_two_samples_resamples_each_within_itself():
    # a: two people at 1.0 and 0.0; b: two people at 0.0; every resample keeps two people per side
    lo, hi = difference_interval([1.0, 0.0], ["p", "q"], [0.0, 0.0], ["r", "s"], draws=500)
    assert (lo, hi) == (0.0, 1.0)
    seen = set()
    cluster_bootstrap(["p", "q", "r", "s"], lambda idx: seen.add(len(idx)) or 0.0, strata="aabb", draws=50)
    assert seen == {4}
    assert all(math.isnan(x) for x in difference_interval([1.0], ["p"], [0.0, 1.0], ["r", "s"]))
