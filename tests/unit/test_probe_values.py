"""Probe values and text metrics: no model needed."""
import dataclasses
import json
import math

import pytest

from probes import FAMILIES, Metric, ProbeConfig, ProbeResult
from probes.base import distractor_facts, nonmember_facts
from probes.relearn import gap
from probes.text import rouge_l
from workbench.stats import auc
from probes.tofu import _tr_score, ks_pvalue
from workbench.tasks.task import Fact, ForgetTask, Form, subsample

pytestmark = pytest.mark.unit


def _result():
    return ProbeResult(
        task="t", task_hash="h", models={"original": "m", "oracle": "o"},
        metrics=[Metric("behaviour.forget.all", "behaviour", "reference", {"original": 0.9, "oracle": 0.1}),
                 Metric("tofu.forget_quality", "tofu", "higher", {"original": 1e-4, "oracle": 1.0}),
                 Metric("relearn.forget.final", "relearn", "reference", {"original": 0.8, "oracle": 0.2},
                        curves={"original": [[0, 0.9], [1, 0.8]], "oracle": [[0, 0.1], [1, 0.2]]}),
                 Metric("traces.concept.cos", "traces", "higher", {"original": 1.0},
                        notes={"oracle": "independently trained"})],
        missing={"edited": "no edit given"}, details={"behaviour": {"original": {"x": [1, 2]}}},
        config={"max_facts": None})


def test_result_round_trips_through_json(tmp_path):
    r = _result()
    back = ProbeResult.load(r.save(tmp_path / "r.json"))
    assert back == r
    assert back.metric("relearn.forget.final").curves["oracle"] == [[0, 0.1], [1, 0.2]]
    assert json.loads((tmp_path / "r.json").read_text())["missing"] == {"edited": "no edit given"}


def test_table_states_missing_roles_and_reasons():
    text = _result().table()
    assert "[edited] not probed: no edit given" in text
    assert "[oracle] traces.concept.cos: independently trained" in text
    row = next(l for l in text.splitlines() if l.startswith("traces.concept.cos"))
    assert row.split()[-1] == "n/a" and "1.000" in row
    assert [r["role"] for r in _result().records()][:2] == ["original", "oracle"]


def test_nan_is_stored_as_null_not_as_invalid_json(tmp_path):
    r = _result()
    r.metrics[0].values["original"] = float("nan")
    r.metrics[0].notes["original"] = "no facts"
    back = ProbeResult.load(r.save(tmp_path / "r.json"))
    assert back.value("behaviour.forget.all", "original") is None


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="direction 'up'"):
        Metric("m", "f", "up")
    with pytest.raises(KeyError, match="metric 'nope'"):
        _result().metric("nope")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ProbeResult.load("/nonexistent/result.json")
    with pytest.raises(ValueError, match="probe 'vibes'"):
        ProbeConfig.from_options({"families": "behaviour,vibes"})
    with pytest.raises(ValueError, match="method='magic'"):
        ProbeConfig.from_options({"relearn.method": "magic"})
    with pytest.raises(ValueError, match="it is now called .relearn.method."):
        ProbeConfig.from_options({"relearn_method": "full"})
    with pytest.raises(ValueError, match="mink_k"):
        ProbeConfig.from_options({"muse": {"mink_k": 0}})
    with pytest.raises(ValueError, match="options for 'vibes'"):
        ProbeConfig(options={"vibes": {}})
    assert ProbeConfig.from_options({"families": "tofu,relearn"}).families == ("tofu", "relearn")
    assert set(ProbeConfig().families) == set(FAMILIES.names())


def test_family_options_are_typed_and_only_given_ones_are_kept():
    c = ProbeConfig.from_options({"relearn.steps": "7", "relearn": {"method": "lora"}, "max_facts": "9"})
    assert c.options == {"relearn": {"steps": 7, "method": "lora"}} and c.max_facts == 9
    assert c.family("relearn").config.steps == 7 and c.family("relearn").config.batch == 16
    assert ProbeConfig(**c.to_dict()) == c == ProbeConfig.from_options(c.to_dict())  # a study cell's key


def test_rouge_l():
    assert rouge_l("Paris", "Paris") == (1.0, 1.0)
    assert rouge_l("the city of Paris.", "Paris") == (1.0, pytest.approx(2 * 0.25 / 1.25))
    assert rouge_l("Lima", "Paris") == (0.0, 0.0)
    rec, f1 = rouge_l("a b x c", "a b c d")
    assert rec == 0.75 and f1 == pytest.approx(0.75)


def test_auc_and_ks():
    assert auc([3, 4, 5], [0, 1, 2]) == 1.0
    assert auc([0, 1], [2, 3]) == 0.0
    assert auc([1, 1], [1, 1]) == 0.5
    assert math.isnan(auc([], [1.0]))
    assert ks_pvalue([0.1, 0.2, 0.3], [0.1, 0.2, 0.3]) == pytest.approx(1.0)
    assert ks_pvalue([0.0] * 20, [1.0] * 20) < 1e-6


def test_truth_ratio_scores_and_relearning_gap():
    assert _tr_score("forget", [0.0, math.log(4.0)]) == pytest.approx((1 + 0.25) / 2)
    assert _tr_score("forget", [-math.log(4.0)]) == pytest.approx(0.25)  # min(tr, 1/tr)
    assert _tr_score("retain", [math.log(0.5), math.log(2.0)]) == pytest.approx(0.25)
    assert _tr_score("retain", [5000.0]) == 0.0  # a collapsed model: no overflow
    assert gap([[0, 1.0], [1, 1.0], [2, 1.0]], [[0, 0.0], [1, 0.5], [2, 1.0]]) == pytest.approx(0.5)
    assert gap([[0, 0.2]], [[0, 0.2]]) == 0


def test_relearning_intervals_pair_each_example_with_the_oracle():
    from probes.relearn import _final, _gap

    def raw(correct):  # three steps of four examples, two per person
        return {"people": ["A", "A", "B", "B"],
                "forget": {"correct": correct, "curve": [[i, sum(c) / 4] for i, c in enumerate(correct)]}}
    model = raw([[0, 0, 0, 0], [1, 0, 1, 0], [1, 1, 1, 0]])
    oracle = raw([[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0]])
    value, (lo, hi) = _gap(model, oracle, "forget")
    # per example: areas 0.75, 0.25, 0.5, 0 over two steps; their mean is the gap of the mean curves
    assert value == pytest.approx((0.75 + 0.25 + 0.5 + 0) / 4)
    assert lo <= value <= hi and lo >= 0.125 and hi <= 0.5  # person means 0.5 and 0.25
    assert _gap(oracle, oracle, "forget")[1] == (0, 0)
    final, (flo, fhi) = _final(model, "forget")
    assert final == 0.75 and (flo, fhi) == (0.5, 1.0)  # person A 1.0, person B 0.5
    assert _gap(model, {**oracle, "people": ["A", "B", "A", "B"]}, "forget")[1] is None  # not the same examples


def _task(n=10):
    facts = [Fact(f"P{i}", "r", f"a{i}", (f"b{i}", f"c{i}", f"d{i}")) for i in range(n)]
    return ForgetTask("t", {"forget": facts[:4], "retain": facts[4:]}, {"d": Form("d", "declarative", {"r": "{subject} is"})})


def test_subsample_is_seeded_and_nonmembers_differ_only_in_the_answer():
    t = _task()
    a, b = subsample(t, 2, 0), subsample(t, 2, 0)
    assert a.splits == b.splits and len(a.facts("forget")) == 2 and len(a.facts("retain")) == 2
    assert subsample(t, None, 0) is t
    # no holdout people: the distractor variant, which differs from a member only in the answer
    non = nonmember_facts(t)
    assert [(n.subject, n.answer) for n in non] == [(f.subject, f.distractors[0]) for f in t.facts("forget")]
    assert distractor_facts(t) == non
    # holdout people: they are the non-members, and subsampling keeps their split
    held = [Fact(f"H{i}", "r", f"h{i}", (f"x{i}", f"y{i}", f"z{i}")) for i in range(4)]
    th = dataclasses.replace(t, splits={**t.splits, "holdout": held})
    assert nonmember_facts(th) == held and distractor_facts(th) == non
    assert len(subsample(th, 2, 0).facts("holdout")) == 2 and subsample(t, 2, 0).facts("holdout") == []


@pytest.mark.parametrize("name", FAMILIES.names())
def test_every_probe_family_is_registered_and_documented(name):
    from pathlib import Path

    from probes import FAMILIES

    assert FAMILIES.get(name).summary
    assert f"`{name}`" in (Path(__file__).parents[2] / "README.md").read_text()


def test_trace_baseline_vectors_are_matched_by_layer_and_norm_and_never_followed():
    import torch

    from probes.traces import POOL, matched_random

    gen = torch.Generator().manual_seed(0)
    originals = [torch.randn(64, 8, generator=gen) * torch.linspace(0.1, 5, 64)[:, None] for _ in range(3)]
    sites = [(0, 3), (0, 40), (2, 63), (2, 62)]
    rand = matched_random(originals, sites)
    assert rand == matched_random(originals, sites)  # seeded by the sites
    assert [L for L, _ in rand] == [L for L, _ in sites] and not set(rand) & set(sites) and len(set(rand)) == 4
    for (L, j), (_, i) in zip(sites, rand):
        norms = originals[L].norm(dim=-1)
        closer = int(((norms - norms[j]).abs() < (norms[i] - norms[j]).abs()).sum())
        assert closer <= POOL + len(sites), (j, i, closer)  # among the closest in norm (the followed ones aside)
