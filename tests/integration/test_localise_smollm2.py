"""The localisers on a real pretrained model: SmolLM2-135M-Instruct and its real-knowledge
task (forget = facts about France). Slow ones use a subset of layers (named below)."""
import pytest
import torch

from workbench.edit import Edit
from workbench.edit.ablations import unit_ablation
from workbench.localise import localise
from workbench.models.readouts import accuracies
from workbench.tasks.prompts import eval_examples

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RUNS = {
    "concept": ("concept", {"layers": "10,11,12,13,14,15", "filter": 5}),  # mid layers; a short causal filter
    "circuits[oct]": ("circuits", {}),
    "circuits[flu]": ("circuits", {"mode": "flu"}),
    "wagle": ("wagle", {"max_facts": 40}),
    "salun": ("salun", {}),
}


@pytest.fixture(scope="module")
def task(smollm2):
    return smollm2.task()


@pytest.mark.parametrize("label", list(RUNS))
def test_localiser_runs_on_smollm2(label, smollm2, task):
    method, options = RUNS[label]
    loc = localise(smollm2, task, method, options, progress=False)
    assert torch.isfinite(loc.scores).all() and loc.scores.abs().sum() > 0
    # it read the task's train view only (workbench.tasks.declared)
    assert loc.provenance["task"] == f"{task.name}[train]" and loc.provenance["seconds"] > 0
    top = loc.top(k=5)
    # weight localisations count scalars: the top 5 weights lie in at most 5 tensors
    assert (len(top) == 5 if loc.kind != "weight" else 1 <= len(top) <= 5)
    assert all(s.layer is None or 0 <= s.layer < 30 for s in top)
    masks = loc.mask(smollm2.model, k=5 if loc.kind != "weight" else 1000)
    assert masks and all(m.any() for m in masks.values())


def test_oct_top_nodes_carry_the_facts(smollm2, task):
    """Mean-ablating the 3 top OCT nodes breaks the France facts; 3 random ones do not."""
    loc = localise(smollm2, task, "circuits", {}, progress=False)
    examples = eval_examples(task, max_facts=40)
    base = accuracies(smollm2, task, examples=examples)
    ablated = Edit("ablate", interventions=unit_ablation(smollm2, task, loc.top(k=3), "mean", max_facts=40,
                                                         positions="after_first"))
    with ablated.applied(smollm2.model):
        top = accuracies(smollm2, task, examples=examples)
    assert base["forget"] - top["forget"] >= 0.5


def test_sae_path_on_smollm2(smollm2):
    """A real model: the SAE trains on real facts plus the model's own continuations, at the
    early-middle layer, and the feature localiser runs on it (a tiny budget: the path, not
    the quality; the full run is in the closing note)."""
    from workbench.localise import localise
    from workbench.sae import SAEConfig, train_sae

    cfg = SAEConfig(training_tokens=8192, continuations=8)
    sae, metrics, path, _ = train_sae(smollm2, cfg, progress=False)
    assert cfg.resolved_layer(smollm2.model.config.num_hidden_layers) == 7
    assert (path / "cfg.json").is_file() and metrics["d_sae"] == 8 * 576 and metrics["l0"] <= cfg.k
    loc = localise(smollm2, smollm2.task(), "sae", {"sae": str(path), "layer": 7}, progress=False)
    assert str(loc.sites[0]).startswith("blocks.7.hook_resid_post.sae.feature.") and len(loc.sites) == 4608
