"""Every localiser on the small testbed model: runs, is deterministic, saves, masks right."""
import math
import sys
from pathlib import Path

import pytest
import torch

from workbench.localise import LOCALISERS, Localisation, localise
from workbench.localise.base import localise_cached
from workbench.localise.circuits import CircuitConfig, node_groups, patching_scores
from workbench.faithfulness import concept_noise_check
from workbench.localise.agreement import spearman
from workbench.tasks.declared import train_view
from workbench.tasks.prompts import build_prompts
from workbench.models.arch import resolve

pytestmark = pytest.mark.integration
README = Path(__file__).resolve().parents[2] / "README.md"
FAST = {"circuits": {"max_facts": 40}, "wagle": {"max_facts": 40}, "salun": {"max_facts": 40},
        "snip": {"max_facts": 40}, "selective": {"max_facts": 40}, "sae": {"sae_tokens": 60_000}}


@pytest.fixture(scope="module")
def task(small_dense):
    return small_dense.task()


MOE_ONLY = {"experts"}  # localisers of mixture-of-experts models run on the small MoE testbed


@pytest.mark.parametrize("method", LOCALISERS.names())
def test_every_localiser_is_documented_runs_and_round_trips(method, tmp_path, request, only_train_pairs):
    small_dense = request.getfixturevalue("small_moe" if method in MOE_ONLY else "small_dense")
    task = small_dense.task()
    cls = LOCALISERS.get(method)
    assert cls.summary and sys.modules[cls.__module__].__doc__
    assert f"`{method}`" in README.read_text(), f"README does not document localiser {method!r}"
    with only_train_pairs(task) as seen:  # no evaluation pair reaches the localiser (nor its SAE)
        loc = localise(small_dense, task, method, FAST.get(method), progress=False)
    # random and magnitude read no data
    assert seen or method in ("random", "magnitude"), "the localiser read no data"
    assert len(loc.sites) > 0 and torch.isfinite(loc.scores).all()
    prov = loc.provenance
    assert prov["localiser"] == method and prov["task_hash"] == train_view(task).content_hash
    assert prov["seconds"] >= 0
    assert len(prov["model_hash"]) == 16
    assert Localisation.load(loc.save(tmp_path / method)) == loc
    again = localise(small_dense, task, method, FAST.get(method), progress=False)
    assert torch.equal(again.scores, loc.scores)  # same config and seed, same numbers


def test_neuron_masks_cover_exactly_the_neurons(small_dense, task):
    loc = localise(small_dense, task, "circuits", {"nodes": "neuron", "max_facts": 40}, progress=False)
    top = loc.top(k=5)
    masks = loc.mask(small_dense.model, k=5)
    d = small_dense.model.config.hidden_size
    assert sum(int(m.sum()) for m in masks.values()) == 5 * 3 * d  # down column, up row, gate row
    for site in top:
        for ps in resolve(site, small_dense.model).params:
            assert masks[ps.name][ps.index].all()


def test_weight_masks_select_the_global_top_fraction(small_dense, task):
    loc = localise(small_dense, task, "salun", {"max_facts": 40}, progress=False)
    masks = loc.mask(small_dense.model, fraction=0.01)
    n = sum(p.numel() for p in small_dense.model.parameters())
    assert sum(int(m.sum()) for m in masks.values()) == math.ceil(0.01 * n)
    chosen = torch.cat([loc.weight_scores[k][m] for k, m in masks.items()])
    rest = torch.cat([loc.weight_scores[k][~masks.get(k, torch.zeros_like(loc.weight_scores[k], dtype=torch.bool))]
                      for k in loc.weight_scores])
    assert chosen.min() >= rest.max()


def test_component_nodes_mask_the_whole_component(small_dense, task):
    loc = localise(small_dense, task, "circuits", {"nodes": "mlp", "max_facts": 20}, progress=False)
    masks = loc.mask(small_dense.model, k=1)
    layer = loc.top(k=1)[0].layer
    assert sorted(masks) == sorted(f"model.layers.{layer}.mlp.{p}_proj.weight" for p in ("gate", "up", "down"))
    assert all(m.all() for m in masks.values())


def test_attribution_patching_agrees_with_activation_patching(small_dense, task):
    prompts = build_prompts(small_dense.tokenizer, task, "forget", max_facts=20)
    groups = node_groups(small_dense.model, ("head", "mlp"), range(small_dense.model.config.num_hidden_layers))
    attr = patching_scores(small_dense, prompts, groups, CircuitConfig(method="attribution"))
    act = patching_scores(small_dense, prompts, groups, CircuitConfig(method="activation"))
    a = torch.cat([attr[i] for i in range(len(groups))])
    b = torch.cat([act[i] for i in range(len(groups))])
    assert spearman(a, b) >= 0.8


def test_noise_corruption_and_flu_mode_run(small_dense, task):
    loc = localise(small_dense, task, "circuits", {"corruption": "noise", "max_facts": 20}, progress=False)
    assert loc.scores.abs().sum() > 0
    flu = localise(small_dense, task, "circuits", {"mode": "flu", "max_facts": 20}, progress=False)
    assert len(flu.provenance["probe_accuracy"]) == small_dense.model.config.num_hidden_layers
    assert {s.layer for s in flu.sites} <= set(range(flu.provenance["lookup_end"] + 1))
    with pytest.raises(ValueError, match="mode=flu"):
        localise(small_dense, task, "circuits", {"mode": "flu", "nodes": "head"}, progress=False)


def test_concept_causal_check_perturbs_only_while_applied(small_dense, task):
    """The noise check's mechanism: no noise changes no answer; noise changes answers while it
    is applied and the weights come back bit-identical (whether the vectors are the concept's
    is the faithfulness check's question, not this test's)."""
    loc = localise(small_dense, task, "concept", {}, progress=False)
    before = {n: p.detach().clone() for n, p in small_dense.model.named_parameters()}
    zero = concept_noise_check(small_dense, task, loc, n=50, sigma=0.0, max_facts=20)
    assert zero["forget_drop"] == 0 and zero["retain_drop"] == 0 and zero["restored"], zero
    result = concept_noise_check(small_dense, task, loc, n=50, sigma=5.0, max_facts=20)
    assert result["restored"] and result["vectors"] == 50
    assert all(torch.equal(before[n], p) for n, p in small_dense.model.named_parameters())
    assert result["forget_drop"] > 0 and result["retain_drop"] > 0, result  # the noise reached the model


def test_cached_localisation_is_reused(small_dense, task, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    first, path, reused = localise_cached(small_dense, task, "circuits", {"max_facts": 20}, progress=False)
    second, path2, reused2 = localise_cached(small_dense, task, "circuits", {"max_facts": 20}, progress=False)
    assert (reused, reused2) == (False, True) and path == path2 and second == first


def test_moe_models_localise_heads_and_weights(small_moe):
    task = small_moe.task()
    loc = localise(small_moe, task, "circuits", {"max_facts": 20}, progress=False)
    assert {s.kind for s in loc.sites} == {"head", "hook"}
    w = localise(small_moe, task, "salun", {"max_facts": 20}, progress=False)
    assert any(getattr(s, "expert", None) is not None for s in w.sites)
    with pytest.raises(ValueError, match="concept vectors need dense MLP value vectors"):
        localise(small_moe, task, "concept", {}, progress=False)


def test_component_budget_by_parameter_count(small_dense, task):
    loc = localise(small_dense, task, "circuits", {"max_facts": 20}, progress=False)  # heads + MLP outputs
    model = small_dense.model
    head = loc.site_params(model, next(s for s in loc.sites if s.kind == "head"))
    d = model.config.hidden_size
    assert head == 4 * (d // model.config.num_attention_heads) * d  # q, k, v rows and o columns
    budget = 3 * head
    chosen = loc.top_by_params(model, budget=budget)
    sizes = [loc.site_params(model, s) for s in chosen]
    assert sum(sizes[:-1]) < budget <= sum(sizes)  # whole components until the budget is reached
    assert chosen == [s for s, _ in loc.ranked()[: len(chosen)]]
    masks = loc.mask(model, sites=chosen)
    assert sum(int(m.sum()) for m in masks.values()) == sum(sizes)


def test_expert_localiser_refuses_dense_models(small_dense, task):
    with pytest.raises(ValueError, match="needs a mixture-of-experts model"):
        localise(small_dense, task, "experts", {}, progress=False)
