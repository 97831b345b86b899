"""The benchmark harness's arithmetic and its report format (no model)."""
import json

import pytest

from workbench.bench import check_device, check_names, compare, load_report
from workbench.bench.core import Report, Row, fit_exponent, interleaved, ratio_row
from workbench.errors import WorkbenchInputError

pytestmark = pytest.mark.unit


def test_ratio_rows_pair_each_repeat():
    r = ratio_row("b", "case", "ref", [2.0, 3.0, 4.0], [1.0, 1.0, 2.0])
    assert (r.ratio, r.lo, r.hi) == (2.0, 2.0, 3.0) and r.case_s == 3.0 and r.ref_s == 1.0
    s = ratio_row("b", "case", "ref", [1.0, 1.0], [4.0, 2.0], kind="speedup", target=3.0)
    assert (s.ratio, s.lo, s.hi) == (3.0, 2.0, 4.0) and s.met is True
    assert ratio_row("b", "c", "r", [3.0], [2.0], target=1.15).met is False
    assert ratio_row("b", "c", "r", [3.0], [2.0]).met is None  # no target: no verdict


def test_fit_exponent_recovers_a_power_law():
    sizes = [10, 20, 40, 80]
    assert fit_exponent(sizes, [0.5 * s ** 1.7 for s in sizes]) == pytest.approx(1.7)
    assert fit_exponent(sizes, [3.0] * 4) == pytest.approx(0.0)


def test_interleaved_rotates_the_order_and_times_every_repeat():
    calls = []
    t = interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warm-up, then rotated rounds
    assert {k: len(v) for k, v in t.items()} == {"a": 3, "b": 3}
    with pytest.raises(WorkbenchInputError, match="repeats=0"):
        interleaved({"a": lambda: None}, repeats=0)


def _report(rows):
    return Report(rows=rows, machine={"cpu": "x"}, device="cpu", quick=True)


def test_compare_flags_only_changes_beyond_both_spreads(tmp_path):
    old = [Row("step", "masked", "plain", "time ratio", 1.10, 1.05, 1.12),
           Row("scoring", "mc", "lm-eval", "speedup", 2.0, 1.9, 2.1),
           Row("lens", "bridge", "hf", "time ratio", 1.5, 1.4, 1.6)]
    path = _report(old).save(tmp_path / "old.json")
    new = [Row("step", "masked", "plain", "time ratio", 1.30, 1.25, 1.35),   # slower, ranges apart: worse
           Row("scoring", "mc", "lm-eval", "speedup", 2.05, 1.95, 2.2),     # overlaps: the same
           Row("lens", "bridge", "hf", "time ratio", 1.2, 1.15, 1.25),      # faster: better
           Row("gemm", "fp32", "-", "GFLOP/s", 100, 99, 101)]               # not in the old report
    verdicts = {(c["bench"]): c["verdict"] for c in compare(load_report(path), new)}
    assert verdicts == {"step": "WORSE", "scoring": "same within spread", "lens": "better"}


def test_reports_round_trip_and_bad_files_are_named(tmp_path):
    path = _report([Row("gemm", "fp32", "-", "GFLOP/s", 100.0, 99.0, 101.0, target=50.0)]).save(tmp_path / "r.json")
    data = json.loads(path.read_text())
    assert data["rows"][0]["met"] is True and data["rows"][0]["better"] == "higher" and data["version"] == 1
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "other.json").write_text('{"rows": 3}')
    for name, needle in (("missing.json", "no such file"), ("bad.json", "not JSON"), ("other.json", "not a benchmark report")):
        with pytest.raises(WorkbenchInputError, match=needle) as err:
            load_report(tmp_path / name)
        assert name in str(err.value)


def test_bad_names_and_devices_are_refused_with_what_is_accepted():
    assert check_names(["scoring", "gemm"]) == ["gemm", "scoring"]  # the peak first
    with pytest.raises(WorkbenchInputError, match="'nope'.*gemm, lens, patching, scoring, step, scaling"):
        check_names(["nope"])
    assert check_device("cpu") == "cpu"
    with pytest.raises(WorkbenchInputError, match="tpu"):
        check_device("tpu")
