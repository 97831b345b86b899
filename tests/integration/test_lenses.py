"""Two lenses over one set of weights: HF, TransformerBridge and nnsight logits agree, and an
in-place weight change on the HF module shows through both lenses."""
import pytest
import torch

from workbench.models.lenses import bridge_logits, hf_logits, nnsight_logits

pytestmark = pytest.mark.integration

PROMPTS = ["Question: Where was {} born? Answer:", "The pet of {} is a"]


def _ids(loaded):
    subject = loaded.task().all_facts[0].subject if loaded.testbed else "France"
    texts = [p.format(subject) for p in PROMPTS]
    enc = [loaded.tokenizer(t)["input_ids"] for t in texts]
    n = min(map(len, enc))
    return torch.tensor([e[:n] for e in enc])


def _check_agreement_and_shared_weights(loaded):
    ids = _ids(loaded)
    ref = hf_logits(loaded, ids)
    assert (bridge_logits(loaded, ids) - ref).abs().max().item() <= 1e-4
    assert (nnsight_logits(loaded, ids) - ref).abs().max().item() <= 1e-4
    # an in-place change on the HF module's own weights shows through both lenses
    w = loaded.model.get_parameter("model.layers.0.self_attn.o_proj.weight")
    saved = w.detach().clone()
    try:
        with torch.no_grad():
            w.mul_(0.0)
        edited = hf_logits(loaded, ids)
        assert (edited - ref).abs().max().item() > 1e-3  # the edit matters
        assert (bridge_logits(loaded, ids) - edited).abs().max().item() <= 1e-4
        assert (nnsight_logits(loaded, ids) - edited).abs().max().item() <= 1e-4
    finally:
        with torch.no_grad():
            w.copy_(saved)
    assert torch.equal(hf_logits(loaded, ids), ref)


def test_dense_lenses(small_dense):
    _check_agreement_and_shared_weights(small_dense)


def test_moe_lenses(small_moe):
    _check_agreement_and_shared_weights(small_moe)


def test_bridge_leaves_the_hf_module_untouched(small_dense):
    names = [n for n, _ in small_dense.model.named_parameters()]
    _ = small_dense.bridge
    assert [n for n, _ in small_dense.model.named_parameters()] == names
    assert type(small_dense.model.model.layers[0]).__name__ == "LlamaDecoderLayer"
    assert "blocks.1.hook_resid_post" in small_dense.bridge.hook_dict


@pytest.mark.slow
def test_smollm2_lenses(smollm2):
    _check_agreement_and_shared_weights(smollm2)
