"""Unlearning losses against direct formulas on random logits (no model)."""
import math

import pytest
import torch
import torch.nn.functional as F

from workbench.edit.losses import (LOSSES, GAConfig, GradDiffConfig, MUConfig, NPOConfig, SimNPOConfig, Step,
                                   mean_ce, retain_term, seq_nll)

pytestmark = pytest.mark.unit


def _batch(seed=0, b=3, n=6, v=11):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, n, v, generator=gen) * 3
    labels = torch.full((b, n), -100)
    labels[:, 3:] = torch.randint(0, v, (b, 3), generator=gen)
    labels[0, 5] = -100  # a padded answer position
    return logits, labels


def _answer_logprobs(logits, labels):
    out = []
    for r in range(labels.shape[0]):
        lp = []
        for t in range(1, labels.shape[1]):
            if labels[r, t] != -100:
                lp.append(torch.log_softmax(logits[r, t - 1], -1)[labels[r, t]])
        out.append(torch.stack(lp))
    return out


def test_nll_sum_mean_and_ce():
    logits, labels = _batch()
    ref = _answer_logprobs(logits, labels)
    assert torch.allclose(seq_nll(logits, labels, "sum"), torch.stack([-x.sum() for x in ref]), atol=1e-5)
    assert torch.allclose(seq_nll(logits, labels, "mean"), torch.stack([-x.mean() for x in ref]), atol=1e-5)
    assert mean_ce(logits, labels).item() == pytest.approx(-torch.cat(ref).mean().item(), abs=1e-5)


def test_npo_and_simnpo_match_their_formulas():
    logits, labels = _batch()
    ref_nll = torch.tensor([1.0, 2.0, 0.5])
    nll = seq_nll(logits, labels, "sum")
    npo = LOSSES.get("npo")().forget_part(Step(logits, labels, None, None, ref_forget_nll=ref_nll), NPOConfig(beta=0.3))
    assert npo.item() == pytest.approx((-(2 / 0.3) * F.logsigmoid(0.3 * (nll - ref_nll))).mean().item(), abs=1e-5)
    nll_mean = seq_nll(logits, labels, "mean")
    sim = LOSSES.get("simnpo")().forget_part(Step(logits, labels, None, None), SimNPOConfig(beta=2.0, delta=0.1))
    assert sim.item() == pytest.approx((-(2 / 2.0) * F.logsigmoid(2.0 * (nll_mean - 0.1))).mean().item(), abs=1e-5)


def test_mechanistic_unlearning_loss_is_minus_log_one_minus_p_with_a_floor():
    logits, labels = _batch(1)
    cfg = MUConfig(floor=-5.0)
    got = LOSSES.get("mu")().forget_part(Step(logits, labels, None, None), cfg)
    terms, count = [], 0
    for lp in _answer_logprobs(logits, labels):
        for x in lp:
            count += 1
            if x >= -5.0:
                terms.append(math.log1p(-math.exp(float(x))))
    assert got.item() == pytest.approx(-sum(terms) / count, abs=1e-4)


def test_kl_retain_term_is_zero_against_itself_and_positive_otherwise():
    logits, labels = _batch(2)
    assert retain_term("kl", logits, labels, logits).item() == pytest.approx(0.0, abs=1e-6)
    assert retain_term("kl", logits, labels, logits + torch.randn_like(logits)).item() > 0
    assert retain_term("nll", logits, labels).item() == pytest.approx(mean_ce(logits, labels).item())


def test_gradient_ascent_has_no_retain_part_and_graddiff_has_one():
    logits, labels = _batch(3)
    step = Step(logits, labels, logits, labels)
    assert set(LOSSES.get("ga")()(step, GAConfig())) == {"forget"}
    parts = LOSSES.get("graddiff")()(step, GradDiffConfig())
    assert set(parts) == {"forget", "retain"} and parts["forget"].item() == pytest.approx(-parts["retain"].item())


def test_each_loss_has_its_own_config_with_its_kind():
    for name in LOSSES.names():
        cls = LOSSES.get(name)
        assert cls.Config.kind == name
    assert not hasattr(GAConfig(), "retain_weight") and not LOSSES.get("ga").uses_retain()
    assert NPOConfig().beta == 0.1 and SimNPOConfig().beta == 2.5  # each loss's own default
    from workbench.edit import OPERATORS
    assert OPERATORS.get("npo").Config is NPOConfig and OPERATORS.get("uoe").Config.kind == "npo"


def test_operator_budget_defaults_and_conflicts():
    from workbench.edit.registry import budget

    assert budget(None, None) == {"k": None, "fraction": 0.05}
    assert budget(7, None) == {"k": 7, "fraction": None}
    assert budget(None, 0.0) == {"k": None, "fraction": 0.0}  # an explicit 0 is kept
    with pytest.raises(ValueError, match="not both"):
        budget(3, 0.1)
