"""The papers' metric conventions, each against a value worked by hand from the published
formula (MUSE / open-unlearning for the membership attacks, TOFU / open-unlearning for the truth
ratio, forget quality and model utility). PrivLeak, the AUC and the KS test are in test_stats
and test_probe_values."""
import math
import zlib
from collections import namedtuple

import pytest

from probes.muse import _attack_scores
from probes.tofu import Tofu
from workbench.tasks.task import SPLITS

pytestmark = pytest.mark.unit
Stats = namedtuple("Stats", "logp mu sigma")


def test_membership_attack_scores_follow_open_unlearning():
    """Three answer tokens with log-probabilities -1, -2, -3; at k = 0.4 Min-K% keeps
    int(0.4 x 3) = 1 token (the lowest); Min-K%++ standardises each token by the model's mean
    and standard deviation of log p at that position, the variance clamped at 1e-6."""
    text = "Ada was born in Paris"
    st = Stats(logp=[-1.0, -2.0, -3.0], mu=[-1.5, -1.5, -1.5], sigma=[0.5, 1.0, 1e-4])
    s = _attack_scores([st], [text], 0.4)
    assert s["loss"] == [pytest.approx(-2.0)]  # minus the mean NLL
    assert s["zlib"] == [pytest.approx(-2.0 / len(zlib.compress(text.encode())))]
    assert s["mink"] == [pytest.approx(-3.0)]
    # z = (-1 + 1.5) / 0.5 = 1, (-2 + 1.5) / 1 = -0.5, (-3 + 1.5) / sqrt(1e-6) = -1500 (clamped)
    assert s["minkpp"] == [pytest.approx(-1500.0)]
    # at k = 1 every token counts
    s = _attack_scores([st], [text], 1.0)
    assert s["mink"] == [pytest.approx(-2.0)] and s["minkpp"] == [pytest.approx((1 - 0.5 - 1500) / 3)]


def _split(prob, rouge, trs):
    return {"prob": prob, "rouge_recall": rouge, "rouge_f1": rouge, "log_truth_ratio": [math.log(t) for t in trs]}


def test_truth_ratio_forget_quality_and_model_utility_by_hand():
    """Truth ratio tr = p(wrong) / p(right): forget facts score mean min(tr, 1/tr), other splits
    mean max(0, 1 - tr); model utility is the harmonic mean of probability, ROUGE-L recall and
    truth-ratio score on retain and neighbour facts; forget quality is the KS p-value of the
    forget truth ratios against the oracle's (identical samples: 1)."""
    raw = {"forget": _split([0.9, 0.8], [1.0, 1.0], [1.0, 2.0]),
           "retain": _split([0.5, 0.7], [1.0, 0.5], [0.5, 0.25]),
           "neighbour": _split([0.8], [1.0], [0.2])}
    assert set(raw) == set(SPLITS)
    metrics, _ = Tofu().compare(None, {"original": raw, "oracle": raw}, {})
    m = {x.name: x for x in metrics}
    assert m["tofu.truth_ratio.forget"].value("original") == pytest.approx((1 + 0.5) / 2)  # min(1, 1), min(2, 1/2)
    assert m["tofu.truth_ratio.retain"].value("original") == pytest.approx((0.5 + 0.75) / 2)
    parts = [0.6, 0.75, 0.625, 0.8, 1.0, 0.8]  # retain: prob, rouge, tr score; neighbour: the same
    assert m["tofu.model_utility"].value("original") == pytest.approx(len(parts) / sum(1 / p for p in parts))
    assert m["tofu.model_utility"].value("original") == pytest.approx(6 / 8.1)
    assert m["tofu.forget_quality"].value("original") == pytest.approx(1.0)
