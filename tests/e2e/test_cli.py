"""The real `workbench` command, as a user runs it."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
EXE = Path(sys.executable).with_name("workbench")


def run(*args, timeout=600):
    return subprocess.run([str(EXE), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.mark.parametrize("args,needle", [
    (("models", "load", "nonsense:thing"), "unknown model 'nonsense:thing'"),
    (("models", "load", "testbed:dense?people=lots"), "bad value"),
    (("sites", "parse", "blocks.x.attn.head.2"), "expected one of"),
    (("sites", "parse", "blocks.1.mlp.neuron.7", "--model", "nonsense"), "unknown model"),
])
def test_bad_input_is_one_clear_line(args, needle):
    r = run(*args, timeout=120)
    assert r.returncode == 2
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_prepare_small_world_prints_quality_floor():
    r = run("models", "prepare", "testbed:dense?people=40&attributes=3&steps=600")
    assert r.returncode == 0, r.stderr
    assert "Quality floor" in r.stdout and "oracle forget accuracy" in r.stdout
    assert "testbed:dense?people=40&attributes=3&steps=600&oracle=1" in r.stdout or "oracle=1" in r.stdout


def test_sites_parse_and_resolve():
    r = run("sites", "parse", "blocks.1.attn.head.2", "--model", "testbed:dense?people=40&attributes=3&steps=600")
    assert r.returncode == 0, r.stderr
    assert "o_proj.weight" in r.stdout and "kind=head" in r.stdout


def test_models_list_and_tasks_show():
    r = run("models", "list")
    assert r.returncode == 0 and "testbed:dense" in r.stdout
    r = run("tasks", "show", "--model", "testbed:dense?people=40")
    assert r.returncode == 0 and "para_unseen" in r.stdout and "held-out" in r.stdout


@pytest.mark.slow
def test_demo_prints_the_knowledge_tables():
    """README command 1's main job (the models come from the shared cache)."""
    r = run("demo", timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    for needle in ("testbed:dense", "testbed:moe", "oracle=1", "smollm2-135m-instruct",
                   "usable facts", "Quality floor"):
        assert needle in r.stdout, needle
