"""SAEs trained with sae-lens on the small testbed: saved in sae-lens' format, measured,
selected by firing rates, clamped as a reversible edit."""
import json

import pytest
import torch

from workbench.edit import Edit, apply_operator
from workbench.localise import localise
from workbench.faithfulness import VERDICTS, sae_clamp_check
from workbench.localise.sae_features import feature_cards
from workbench.models.readouts import model_fingerprint
from workbench.sae import SAEConfig, load_sae, resid_tokens, train_sae

pytestmark = pytest.mark.integration
CFG = SAEConfig(layer=1, training_tokens=60_000)


@pytest.fixture(scope="module")
def trained(small_dense):
    return train_sae(small_dense, CFG, progress=False)


def test_sae_is_trained_by_sae_lens_saved_in_its_format_and_measured(small_dense, trained):
    sae, metrics, path, _ = trained
    assert (path / "cfg.json").is_file() and (path / "sae_weights.safetensors").is_file()
    cfg = json.loads((path / "cfg.json").read_text())
    assert cfg["architecture"] == "topk" and cfg["d_sae"] == 8 * small_dense.model.config.hidden_size
    assert type(sae).__module__.startswith("sae_lens.")
    assert metrics["l0"] <= CFG.k + 1e-6 and 0 <= metrics["dead_fraction"] <= 1
    assert metrics["explained_variance"] > 0.5, metrics  # even a short run reconstructs most variance
    again, metrics2, path2, built = train_sae(small_dense, CFG, progress=False)
    assert not built and path2 == path and metrics2 == metrics  # cached by content
    x, _ = resid_tokens(small_dense, 1, ["Ada Abendroth was born in Paris"])
    assert torch.equal(again.encode(x), sae.encode(x))


def test_feature_localiser_selects_forget_specific_features(small_dense, trained):
    task = small_dense.task()
    loc = localise(small_dense, task, "sae", {"layer": 1, "sae_tokens": 60_000}, progress=False)
    assert str(loc.sites[0]) == "blocks.1.hook_resid_post.sae.feature.0"
    top = loc.top(k=10)
    f_rate, r_rate = torch.tensor(loc.provenance["forget_rate"]), torch.tensor(loc.provenance["retain_rate"])
    kept = [s.feature for s in top if loc.scores[s.feature] >= 0]
    assert kept and all(r_rate[j] < 0.01 for j in kept) and all(f_rate[j] > 0 for j in kept)
    assert loc.scores.max() == f_rate[r_rate < 0.01].max()  # SAEBench: the top forget rate among kept
    uron = localise(small_dense, task, "sae", {"layer": 1, "sae_tokens": 60_000, "selector": "saeuron"}, progress=False)
    assert uron.scores.sum().abs() < 1e-4  # difference of two distributions
    sae = trained[0]
    cards = feature_cards(small_dense, sae, 1, [s.feature for s in top[:3]],
                          [e.text for e in task.examples("forget") if e.kind != "mcq"])
    assert len(cards) == 3 and all(len(c["top_tokens"]) == 10 for c in cards)
    assert any(c["contexts"] and "[[" in c["contexts"][0]["text"] for c in cards)


def test_clamp_edit_is_reversible_saved_and_refuses_export(small_dense, trained, tmp_path):
    task = small_dense.task()
    loc = localise(small_dense, task, "sae", {"layer": 1, "sae_tokens": 60_000}, progress=False)
    edit = apply_operator(small_dense, loc, task, "sae-clamp", {"k": 10, "c": 20.0})
    ids = torch.tensor([small_dense.tokenizer(next(task.examples("forget")).text)["input_ids"]])
    before, fp = small_dense.model(input_ids=ids).logits, model_fingerprint(small_dense.model)
    with edit.applied(small_dense.model):
        during = small_dense.model(input_ids=ids).logits
    assert not torch.allclose(before, during) and torch.equal(small_dense.model(input_ids=ids).logits, before)
    assert model_fingerprint(small_dense.model) == fp
    back = Edit.load(edit.save(tmp_path / "e"))
    assert back.interventions[0].extra == {"sae": loc.provenance["sae"], "c": 20.0}
    with back.applied(small_dense.model):
        assert torch.allclose(small_dense.model(input_ids=ids).logits, during)
    with pytest.raises(ValueError, match="sae_clamp"):
        edit.export(small_dense, tmp_path / "hf")
    res = sae_clamp_check(small_dense, task, loc, n=10, c=20.0, draws=2).as_dict()
    assert {f"{s}_{v}" for s in ("forget", "neighbour", "retain_eval") for v in ("drop", "random", "excess")} <= set(res)
    assert res["verdict"] in VERDICTS and res["n"] == 10 and res["c"] == 20.0


def test_bad_sae_names_are_explained():
    with pytest.raises(ValueError, match="RELEASE/SAE_ID"):
        load_sae("no-such-thing")
    with pytest.raises(ValueError, match="no-such-release/some-sae"):
        load_sae("no-such-release/some-sae")
