"""The faithfulness verdict and its random baselines, on numbers and sites (no model)."""
import random
from types import SimpleNamespace

import pytest
import torch

from workbench.faithfulness import MIN_EFFECT, judge
from workbench.faithfulness.ablation import random_units, random_weight_masks
from workbench.faithfulness.criterion import drops
from workbench.sites import HeadSite, HookSite, NeuronSite


def _examples(people: int, facts: int, prefix: str) -> list:
    return [SimpleNamespace(fact=SimpleNamespace(subject=f"{prefix}{p}")) for p in range(people) for _ in range(facts)]


def _measure(examples: dict, drop: dict[str, float], rng: random.Random) -> dict:
    """Per-example correctness after an edit that breaks each split's facts with probability `drop`."""
    return {s: [0.0 if rng.random() < drop[s] else 1.0 for _ in exs] for s, exs in examples.items()}


def _row(top: dict, rand: dict, people: int = 20, draws: int = 20, seed: int = 0) -> dict:
    rng = random.Random(seed)
    examples = {"forget": _examples(people, 5, "f"), "neighbour": _examples(people, 5, "n"),
                "retain_eval": _examples(people, 5, "r")}
    base = {s: [1.0] * len(exs) for s, exs in examples.items()}
    return drops(base, _measure(examples, top, rng), [_measure(examples, rand, rng) for _ in range(draws)], examples)


NONE = {"forget": 0.0, "neighbour": 0.0, "retain_eval": 0.0}


@pytest.mark.parametrize("top,rand,expected", [
    ({"forget": 0.6, "neighbour": 0.02, "retain_eval": 0.02}, NONE, "specific"),
    # breaks everything as far as forget (a whole late MLP)
    ({"forget": 0.9, "neighbour": 0.9, "retain_eval": 0.9}, {"forget": 0.3, "neighbour": 0.3, "retain_eval": 0.3},
     "unspecific"),
    # breaks forget beyond random, but retain_eval as much
    ({"forget": 0.5, "neighbour": 0.0, "retain_eval": 0.5}, NONE, "unspecific"),
    (NONE, NONE, "no effect"),
    # as destructive as random sites, and random sites break nothing else: no effect beyond random
    ({"forget": 0.02, "neighbour": 0.0, "retain_eval": 0.0}, {"forget": 0.02, "neighbour": 0.0, "retain_eval": 0.0},
     "no effect"),
])
def test_verdicts_on_planted_drops(top, rand, expected):
    row = _row(top, rand)
    assert judge(row) == expected, row


def test_a_small_effect_on_few_people_is_inconclusive_not_no_effect():
    examples = {s: _examples(4, 5, s) for s in ("forget", "neighbour", "retain_eval")}
    base = {s: [1.0] * 20 for s in examples}
    hit = {**base, "forget": [0.0] * 5 + [1.0] * 15}  # one person of four loses every fact
    row = drops(base, hit, [base], examples)
    assert row["forget_excess"] == 0.25 and row["intervals"]["forget_excess"][0] == 0, row
    assert judge(row) == "inconclusive", row
    # the same effect on many people is resolved (the power to see it)
    assert judge(_row({"forget": 0.3, "neighbour": 0.0, "retain_eval": 0.0}, NONE, people=40)) == "specific"


def test_the_excess_is_paired_per_fact_and_the_minimum_effect_is_a_threshold():
    row = _row({"forget": 0.6, "neighbour": 0.0, "retain_eval": 0.0}, {"forget": 0.6, "neighbour": 0.0,
                                                                       "retain_eval": 0.0})
    assert abs(row["forget_excess"] - (row["forget_drop"] - row["forget_random"])) < 1e-12
    assert judge(row) in ("no effect", "inconclusive"), row  # as far as random sites: nothing specific
    specific = _row({"forget": 0.2, "neighbour": 0.0, "retain_eval": 0.0}, NONE, people=60)
    assert judge(specific, min_effect=MIN_EFFECT) == "specific"
    assert judge(specific, min_effect=0.5) != "specific"  # an effect smaller than the stated minimum


def test_random_units_match_kind_layer_and_component_and_exclude_the_top():
    sites = ([NeuronSite(L, j) for L in range(3) for j in range(10)] + [HeadSite(L, h) for L in range(3) for h in range(4)]
             + [HookSite(L, "hook_mlp_out") for L in range(3)])
    top = [NeuronSite(2, 0), NeuronSite(2, 1), HeadSite(0, 3), HookSite(2, "hook_mlp_out")]
    rng = random.Random(0)
    for _ in range(30):
        draw, overlap = random_units(sites, top, rng)
        assert overlap == 0 and not set(draw) & set(top) and len(set(draw)) == len(draw)
        assert [type(s) for s in draw] == [type(s) for s in top]
        assert draw[0].layer == draw[1].layer == 2 and draw[2].layer == 0  # same stratum where it has room
        assert isinstance(draw[3], HookSite) and draw[3].layer != 2  # the only late MLP output: another layer's
    # every site of a kind on top: nothing else to draw, so the draw overlaps and says so
    draw, overlap = random_units(sites, [HookSite(L, "hook_mlp_out") for L in range(3)], rng)
    assert overlap == 3


def test_random_weight_masks_match_each_tensor_and_overlap_only_beyond_half():
    gen = torch.Generator().manual_seed(0)
    top = {"a": torch.zeros(10, 10, dtype=torch.bool), "b": torch.zeros(50, dtype=torch.bool)}
    top["a"].view(-1)[:20] = True
    top["b"][:5] = True
    masks, overlap = random_weight_masks(top, gen)
    assert overlap == 0 and masks["a"].shape == (10, 10)
    assert int(masks["a"].sum()) == 20 and int(masks["b"].sum()) == 5
    assert not (masks["a"] & top["a"]).any() and not (masks["b"] & top["b"]).any()
    # a tensor with too few free scalars is made up from the others, still outside the top
    top2 = {"a": torch.ones(10, dtype=torch.bool), "b": torch.zeros(50, dtype=torch.bool)}
    top2["a"][:2] = False
    masks, overlap = random_weight_masks(top2, gen)
    assert overlap == 0 and int(masks["a"].sum()) + int(masks["b"].sum()) == 8 and not (masks["a"] & top2["a"]).any()
    # 95% of everything: a random draw cannot avoid the top; the overlap is counted
    top3 = {"a": torch.ones(100, dtype=torch.bool)}
    top3["a"][:5] = False
    masks, overlap = random_weight_masks(top3, gen)
    assert int(masks["a"].sum()) == 95 and overlap == 90


def test_a_check_with_nothing_to_lose_has_no_power_to_say_no_effect():
    examples = {s: _examples(20, 5, s) for s in ("forget", "neighbour", "retain_eval")}
    base = {**{s: [1.0] * 100 for s in examples}, "forget": [0.0] * 100}  # the model knows no forget fact
    row = drops(base, base, [base], examples)
    assert row["forget_before"] == 0 and row["intervals"]["forget_excess"] == [0.0, 0.0]
    assert judge(row) == "inconclusive", row  # not "no effect": no drop could have been seen
