"""`workbench bench --quick` as a smoke test: every benchmark runs and the report is valid
JSON (no timing is asserted: timings belong to the benchmark itself, not to a test)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
EXE = Path(sys.executable).with_name("workbench")


def run(*args, timeout=600):
    return subprocess.run([str(EXE), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_quick_bench_runs_every_benchmark_and_writes_its_report(tmp_path):
    out = tmp_path / "bench.json"
    r = run("bench", "--quick", "--json", str(out), timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["quick"] is True and data["skipped"] == {} and data["device"] == "cpu"
    assert {row["bench"] for row in data["rows"]} == {"gemm", "lens", "patching", "scoring", "step", "scaling"}
    for row in data["rows"]:
        assert row["lo"] <= row["ratio"] <= row["hi"], row
        assert row["met"] in (True, False, None) and row["better"] in ("lower", "higher")
    by_case = {row["case"].split(" | ")[0]: row for row in data["rows"]}
    # the references compute the same things: same patching scores, same multiple-choice verdicts
    assert by_case["activation patching"]["extra"]["max rel. score diff"] < 1e-4
    same = by_case["multiple-choice scoring"]["extra"]["same verdicts"].split("/")
    assert same[0] == same[1]
    assert "all benchmarks" in r.stdout and f"report: {out}" in r.stdout

    again = run("bench", "--quick", "--only", "gemm", "--json", str(tmp_path / "b.json"), "--compare", str(out))
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"against {out}" in again.stdout and "fp32 matmul" in again.stdout.split("against")[1]


@pytest.mark.parametrize("args,needle", [
    (("--only", "lens,warp"), "benchmark 'warp': expected some of gemm, lens"),
    (("--device", "tpu"), "--device 'tpu': expected cpu or cuda"),
    (("--compare", "no-such-report.json"), "--compare no-such-report.json: no such file"),
    (("--repeats", "0"), "--repeats 0: expected 1 or more"),
])
def test_bad_bench_options_are_one_clear_line(args, needle, tmp_path):
    r = run("bench", *args, "--json", str(tmp_path / "x.json"), timeout=120)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert r.returncode == 2 and len(lines) == 1 and needle in lines[0], r.stderr
    assert not (tmp_path / "x.json").exists()
