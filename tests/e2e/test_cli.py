"""The real `workbench` command, as a user runs it."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.faithfulness import VERDICTS

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
    r = run("models", "prepare", "testbed:dense?people=40&attributes=3&steps=600", "--allow-below-floor")
    assert r.returncode == 0, r.stderr
    assert "Quality floor" in r.stdout and "oracle forget accuracy" in r.stdout
    assert "testbed:dense?people=40&attributes=3&steps=600&oracle=1" in r.stdout or "oracle=1" in r.stdout


def test_prepare_below_the_floor_exits_non_zero_with_one_line():
    spec = "testbed:dense?people=40&attributes=3&steps=40"  # deliberately under-trained
    r = run("models", "prepare", spec)
    assert r.returncode == 3, r.stdout + r.stderr
    # stderr also carries the training's progress bars; the verdict is one line, the last
    errors = [l for l in r.stderr.replace("\r", "\n").splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and r.stderr.rstrip().endswith(errors[0]), r.stderr[-2000:]
    assert errors[0].startswith(f"error: {spec} is below the quality floor: ") and "Traceback" not in r.stderr
    assert "full trained forms (all splits)" in errors[0] and "--allow-below-floor" in errors[0]
    assert "steps=4000 in the spec" in errors[0]  # how to proceed: the recipe's own steps for this world
    assert "NO" in r.stdout  # the floor table still shows every line
    from workbench import cache
    from workbench.models.testbed import TestbedSpec

    assert cache.is_complete(TestbedSpec.parse(spec).cache_path)  # the model stays in the cache
    kept = run("models", "prepare", spec, "--allow-below-floor")
    last = kept.stderr.rstrip().splitlines()[-1]
    assert kept.returncode == 0 and last.startswith(f"warning: {spec} is below the quality floor"), kept.stderr


def test_sites_parse_and_resolve():
    r = run("sites", "parse", "blocks.1.attn.head.2", "--model", "testbed:dense?people=40&attributes=3&steps=600")
    assert r.returncode == 0, r.stderr
    assert "o_proj.weight" in r.stdout and "kind=head" in r.stdout


def test_models_list_and_tasks_show():
    r = run("models", "list")
    assert r.returncode == 0 and "testbed:dense" in r.stdout
    r = run("tasks", "show", "--model", "testbed:dense?people=40")
    assert r.returncode == 0 and "para_unseen" in r.stdout and "held-out" in r.stdout


SMALL_SPEC = "testbed:dense?people=40&attributes=3&steps=600"


def test_localise_prints_top_sites_layers_and_check_table(tmp_path):
    out = tmp_path / "loc"
    r = run("localise", "--model", SMALL_SPEC, "--method", "circuits", "-o", "nodes=neuron", "-o", "max_facts=40",
            "--check", "--draws", "2", "--out", str(out), "--top", "3", "--fresh")
    assert r.returncode == 0, r.stderr
    assert "top sites:" in r.stdout and "blocks." in r.stdout and "per layer" in r.stdout
    assert "faithfulness" in r.stdout and "neighbour_excess_95" in r.stdout and "retain_eval_random" in r.stdout
    rows = [x for x in r.stdout.splitlines() if x.split()[:1] in (["0.010"], ["0.050"])]  # one per budget
    assert len(rows) == 2 and all(sum(f"  {v}  " in x for v in VERDICTS) == 1 for x in rows), rows
    assert (out / "localisation.json").is_file() and (out / "scores.safetensors").is_file()
    assert "attribution patching" in r.stderr  # the progress bar
    r2 = run("localise", "--model", SMALL_SPEC, "--method", "salun", "-o", "max_facts=40", "--out", str(tmp_path / "w"))
    assert r2.returncode == 0, r2.stderr
    r3 = run("agreement", str(out), str(tmp_path / "w"))
    assert r3.returncode == 0, r3.stderr
    assert "jaccard@3" in r3.stdout and "spearman" in r3.stdout


@pytest.mark.parametrize("args,needle", [
    (("localise", "--method", "nope"), "unknown localiser 'nope'; expected one of:"),
    (("localise", "--method", "circuits", "-o", "mode=sideways"), "mode='sideways': expected one of oct, flu"),
    (("localise", "--method", "wagle", "-o", "gamma"), "expected key=value"),
    (("localise", "--method", "concept", "--task", "mystery"), "task 'mystery': expected one of"),
    (("agreement", "/nonexistent/a", "/nonexistent/b"), "missing localisation.json"),
])
def test_localise_bad_input_is_one_clear_line(args, needle):
    r = run(*args, "--model", SMALL_SPEC, timeout=300) if args[0] == "localise" else run(*args, timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip() and not l.startswith("Loading")]
    assert lines and lines[-1].startswith("error: ") and needle in lines[-1], r.stderr
    assert "Traceback" not in r.stderr


def test_edit_prints_original_edited_oracle_and_writes_artifacts(tmp_path):
    r = run("edit", "--model", SMALL_SPEC, "--method", "circuits", "-l", "nodes=neuron", "-l", "max_facts=40",
            "--operator", "npo", "-o", "steps=6", "-o", "batch_size=16", "--out", str(tmp_path / "edit"),
            "--export", str(tmp_path / "hf"), "--max-facts", "20", "--fresh")
    assert r.returncode == 0, r.stderr
    for needle in ("original", "edited (npo)", "oracle", "forget", "retain", "neighbour", "weights changed",
                   "forget_in_sample", "held out of every edit"):
        assert needle in r.stdout, r.stdout
    assert (tmp_path / "edit" / "edit.safetensors").is_file() and (tmp_path / "edit" / "edit.json").is_file()
    assert (tmp_path / "hf" / "config.json").is_file() and list((tmp_path / "hf").glob("*.safetensors"))
    assert "unlearning (npo)" in r.stderr  # the progress bar with the loss parts


@pytest.mark.parametrize("args,needle", [
    (("edit", "--operator", "nope"), "unknown operator 'nope'"),
    (("edit", "--operator", "npo", "-o", "steps=many"), "steps='many': expected int"),
    (("edit", "--operator", "ablate"), "needs a localisation"),
    # a budget without a localisation would have been ignored (the whole model trained): refused
    (("edit", "--operator", "ga", "-o", "fraction=0.05"), "option fraction=0.05: a budget selects among a localisation"),
    (("edit", "--operator", "ablate", "--localisation", "/nonexistent"), "missing localisation.json"),
])
def test_edit_bad_input_is_one_clear_line(args, needle):
    r = run(*args, "--model", SMALL_SPEC, timeout=300)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip() and not l.startswith("Loading")]
    assert lines and lines[-1].startswith("error: ") and needle in lines[-1], r.stderr


def test_probe_cli_prints_the_table_and_writes_json_and_figures(tmp_path):
    spec = "testbed:dense?people=40&attributes=3&steps=600"
    out = tmp_path / "result.json"
    r = run("probe", "--model", spec, "--probes", "behaviour,muse,relearn", "-o", "relearn.steps=4",
            "--json", str(out), "--figures", str(tmp_path / "fig"), "--fresh")
    assert r.returncode == 0, r.stderr
    assert "behaviour.forget.all" in r.stdout and "relearn.forget.gap" in r.stdout
    assert "[edited] not probed: no edit given" in r.stdout
    assert "probing" in r.stderr  # the progress bar
    # every headline with its interval, and the second oracle's column: the noise floor
    assert "95% bootstrap interval" in r.stdout and "are the noise floor" in r.stdout
    row = next(line for line in r.stdout.splitlines() if line.startswith("muse.privleak "))
    assert row.count("[") == 3, row  # original, oracle and oracle2, each with its interval
    data = json.loads(out.read_text())
    assert set(data["models"]) == {"original", "oracle", "oracle2"}
    leak = next(m for m in data["metrics"] if m["name"] == "muse.privleak")
    assert leak["intervals"]["oracle2"][0] <= 0 <= leak["intervals"]["oracle2"][1]
    curves = next(m for m in data["metrics"] if m["name"] == "relearn.forget.final")["curves"]
    assert len(curves["original"]) == 5 and len(curves["oracle"]) == 5 and len(curves["oracle2"]) == 5
    assert (tmp_path / "fig" / "relearning.html").stat().st_size > 10_000


@pytest.mark.parametrize("args,needle", [
    (("probe", "--probes", "behaviour,vibes"), "probe 'vibes'"),
    (("probe", "-o", "relearn.steps=many"), "steps='many'"),
    (("probe", "-o", "relearn_steps=4"), "it is now called 'relearn.steps'"),
    (("probe", "--edit", "/nonexistent/edit"), "/nonexistent/edit"),
])
def test_probe_cli_bad_input(args, needle):
    r = run(*args, timeout=120)
    assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_expert_localisation_check_removes_the_top_expert(tmp_path):
    """`--check` on an MoE expert localisation runs the removal check, not mean ablation."""
    r = run("localise", "--model", "testbed:moe?people=40&attributes=3&steps=600", "--method", "experts",
            "-o", "max_facts=40", "--check", "--draws", "2", "--out", str(tmp_path / "e"))
    assert r.returncode == 0, r.stderr
    assert "remove the top expert from its router's top-k" in r.stdout and "forget_excess_95" in r.stdout
    line = next(x for x in r.stdout.splitlines() if x.startswith("blocks.") and ".mlp.expert." in x and "[" in x)
    # site; per split (forget, neighbour, retain_eval): drop, random drop, the excess's interval; the verdict
    verdict = next(v for v in VERDICTS if line.rstrip().endswith(v))
    parts = line.removesuffix(verdict).replace("[", " ").replace("]", " ").replace(",", " ").split()
    assert len(parts) == 13, line
    drop, rand, lo, hi = (float(x) for x in parts[1:5])
    assert lo <= drop - rand + 2e-3 and drop - rand - 2e-3 <= hi, line


def test_sae_train_localise_and_cards(tmp_path):
    spec = "testbed:dense?people=40&attributes=3&steps=600"
    r = run("sae", "train", "--model", spec, "--layer", "1", "-o", "training_tokens=60000")
    assert r.returncode == 0, r.stderr
    assert "blocks.1.hook_resid_post" in r.stdout and "explained_variance" in r.stdout and "train_s" in r.stdout
    out = tmp_path / "loc"
    r = run("localise", "--model", spec, "--method", "sae", "-o", "layer=1", "-o", "sae_tokens=60000",
            "--out", str(out), "--check", "--draws", "2")
    assert r.returncode == 0, r.stderr
    assert "sae.feature." in r.stdout and "clamp the top-N SAE features" in r.stdout
    r = run("sae", "cards", str(out), "--n", "3")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("feature ") == 3 and "tokens:" in r.stdout
    r = run("sae", "train", "--layer", "one", timeout=120)
    assert r.returncode == 2 and "--layer 'one'" in r.stderr


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:  # the field after the state is the parent's pid
            out.append(int(stat.parent.name))
    return out


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except OSError:
        return False


def test_sigterm_stops_the_training_children():
    """SIGTERM to `workbench models prepare` (which trains a model and its oracle twin in two
    child processes) stops the children too; no training is left running for hours."""
    import signal
    import time

    spec = "testbed:dense?people=40&attributes=3&seed=9017&steps=50000"  # never finishes within the test
    proc = subprocess.Popen([str(EXE), "models", "prepare", spec], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(_children(proc.pid)) < 2:
        time.sleep(0.5)
    kids = _children(proc.pid)
    assert len(kids) == 2, "the two training processes did not start"
    time.sleep(2)  # inside the training loop
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    deadline = time.time() + 30
    while time.time() < deadline and any(_running(k) for k in kids):
        time.sleep(0.5)
    alive = [k for k in kids if _running(k)]
    assert not alive, f"training children {alive} still run after SIGTERM to their parent"
    assert proc.returncode != 0
