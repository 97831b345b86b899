"""README command 1's main job: `workbench demo` on the embedded default, then a warm rerun."""
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
EXE = Path(sys.executable).with_name("workbench")


def _report_renders_in_chromium(report: Path) -> None:
    """The report opens in a real browser with every figure drawn (plotly.js inlined)."""
    import shutil

    chromium = shutil.which("chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    if chromium is None:
        pytest.fail("chromium is not installed: apt-get install -y chromium (.ci/run does it)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu",
                                                                    "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(report.resolve().as_uri())
        page.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=60_000)
        drawn = page.locator(".js-plotly-plot").count()
        titles = page.locator(".js-plotly-plot .gtitle").all_text_contents()
        out = Path(__file__).resolve().parents[2] / "test-output" / "report"
        out.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out / "report.png"), full_page=True)
        browser.close()
    assert drawn == 4, titles
    assert any("Forget vs retain" in t for t in titles) and any("Relearning" in t for t in titles), titles


def test_demo_runs_the_default_study_and_reruns_from_the_store(tmp_path, default_dense, default_dense_oracle,
                                                               default_moe):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "WORKBENCH_RUNS": str(tmp_path)}
    r = subprocess.run([str(EXE), "demo"], capture_output=True, text=True, env=env, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout
    for step in ("[1/4]", "[2/4]", "[3/4]", "[4/4]"):
        assert step in out
    assert out.count("quality floor: every target met") == 2, out
    store = tmp_path / "default" / "study.sqlite"
    conn = sqlite3.connect(store)
    rows = conn.execute("SELECT localiser_method, operator_name, status FROM cells").fetchall()
    assert len(rows) == 11 and {s for *_, s in rows} == {"done"}, rows
    # every localiser family and a relearning attack in every cell
    assert {m for m, _, _ in rows} >= {"concept", "circuits", "wagle", "salun", "random", "sae", "experts", None}
    assert conn.execute("SELECT count(DISTINCT cell_id) FROM curves WHERE metric = 'relearn.forget.final' "
                        "AND role = 'edited'").fetchone()[0] == 11
    # the headline names the references and the report holds every figure
    assert "[original]" in out and "[oracle]" in out
    report = tmp_path / "default" / "report.html"
    text = report.read_text()
    assert all(f'id="fig-{k}"' in text for k in ("pareto", "relearning", "traces", "agreement"))
    assert str(report.resolve()) in out
    _report_renders_in_chromium(report)
    # the rerun finds every cell in the store and recomputes nothing
    again = subprocess.run([str(EXE), "demo"], capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert re.search(r"0 cells run now, 11 from the store, 0 failed", again.stdout), again.stdout
