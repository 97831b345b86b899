"""The worked examples of CONTRIBUTING.md run: a new localiser, operator and probe family, each
one file plus its registration, on the small testbed (in a fresh process, so the global
registries of this test session stay as shipped)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"```python file=(\S+)\n(.*?)```", re.S)

RUN = r"""
import json, sys, types
from pathlib import Path

for path, code in json.loads(Path(sys.argv[1]).read_text()):
    name = path.removesuffix(".py").replace("/", ".")
    module = types.ModuleType(name)
    module.__file__ = path
    sys.modules[name] = module
    exec(compile(code, path, "exec"), module.__dict__)  # registers, as its import would

import torch
from probes import probe
from workbench.edit import apply_operator
from workbench.localise import localise
from workbench.models import load

loaded = load(sys.argv[2], progress=False)
task = loaded.task()
loc = localise(loaded, task, "activation_gap", {"max_facts": 10}, progress=False)
edit = apply_operator(loaded, loc, task, "scale", {"k": 5}, progress=False)
before = {n: loaded.model.get_parameter(n).detach().clone() for n in edit.weights}
result = probe(loaded, task, edit=edit, oracle=None, config={"families": "confidence,behaviour", "max_facts": 6},
               progress=False, use_cache=False)
print(json.dumps({
    "kind": loc.kind, "n_sites": len(loc.sites), "finite": bool(torch.isfinite(loc.scores).all()),
    "changed": sum(int((edit.weights[n] != before[n]).sum()) for n in edit.weights),
    "config": edit.config, "restored": all(torch.equal(loaded.model.get_parameter(n), t) for n, t in before.items()),
    "confidence": result.metric("confidence.forget").values,
}))
"""


def test_the_worked_examples_are_one_file_each_and_run(small_dense, tmp_path):
    blocks = BLOCK.findall((ROOT / "CONTRIBUTING.md").read_text())
    assert [p for p, _ in blocks] == ["workbench/localise/activation_gap.py", "workbench/edit/scale.py",
                                      "probes/confidence.py"]
    for path, _ in blocks:
        assert not (ROOT / path).exists(), f"{path} is an example, not a shipped module"
    (tmp_path / "blocks.json").write_text(json.dumps(blocks))
    (tmp_path / "run.py").write_text(RUN)
    r = subprocess.run([sys.executable, str(tmp_path / "run.py"), str(tmp_path / "blocks.json"), small_dense.spec],
                       capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    cfg = small_dense.model.config
    assert out["kind"] == "neuron" and out["n_sites"] == cfg.num_hidden_layers * cfg.intermediate_size
    assert out["finite"] and out["changed"] > 0 and out["restored"]
    assert out["config"] == {"factor": 0.0, "k": 5, "fraction": None}  # the edit carries its real config
    assert out["confidence"]["original"] > 0.5  # the small model knows its forget facts
    assert 0.0 <= out["confidence"]["edited"] <= 1.0 and out["confidence"]["edited"] != out["confidence"]["original"]
