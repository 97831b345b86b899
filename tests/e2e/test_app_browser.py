"""The app in a real browser: `workbench app` served, driven in headless Chromium (Debian's
`chromium`, via Playwright, never a downloaded browser) through model -> localise -> edit ->
probe on testbed:dense. Screenshots and per-page timings go to test-output/app/."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
EXE = Path(sys.executable).with_name("workbench")
OUT = Path(__file__).resolve().parents[2] / "test-output" / "app"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path, default_dense, default_dense_oracle):
    port = _free_port()
    from workbench import cache

    fresh = tmp_path / "cache"  # shares only the trained models: every page's action is computed anew
    fresh.mkdir()
    (fresh / "models").symlink_to(cache.cache_root() / "models", target_is_directory=True)
    env = {**os.environ, "WORKBENCH_RUNS": str(tmp_path / "runs"), "WORKBENCH_CACHE": str(fresh)}
    proc = subprocess.Popen([str(EXE), "app", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("the app did not start: " + proc.stdout.read().decode()[-2000:])
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _outward_addresses() -> list[str]:
    """This machine's IPv4 addresses other than loopback (the source address of a route out)."""
    found = set()
    for probe in ("192.0.2.1", "10.255.255.255", "8.8.8.8"):  # a UDP connect sends nothing
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.connect((probe, 9))
                found.add(s.getsockname()[0])
            except OSError:
                continue
    return sorted(a for a in found if not a.startswith("127."))


def _listening_addresses(port: int) -> set[str]:
    """The local addresses (hex, as /proc/net/tcp{,6} write them) of sockets listening on `port`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_the_app_serves_this_machine_only(server):
    """`workbench app` binds the loopback address: its listening socket is on 127.0.0.1 only,
    and a connection to any other address of the machine is refused (it has no login)."""
    port = int(server.rsplit(":", 1)[1])
    assert urllib.request.urlopen(f"{server}/_stcore/health", timeout=5).status == 200
    assert _listening_addresses(port) == {"0100007F"}, _listening_addresses(port)  # 127.0.0.1, little-endian hex
    for address in _outward_addresses():  # this machine's other addresses, where it has any
        with socket.socket() as s:
            s.settimeout(5)
            with pytest.raises(OSError):
                s.connect((address, port))
    # serving elsewhere takes an explicit address, and says what that means
    done = subprocess.run([str(EXE), "app", "--host", "not-an-address"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--host 'not-an-address': expected an IP address" in done.stderr, done.stderr


def test_model_localise_edit_probe_in_chromium(server):
    if CHROMIUM is None:
        pytest.fail("chromium is not installed: apt-get install -y chromium (.ci/run does it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    OUT.mkdir(parents=True, exist_ok=True)
    timings = {}
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(600_000)
        page.goto(server)
        page.get_by_role("button", name="Load").wait_for()

        def act(name: str, button: str, done) -> None:
            t0 = time.perf_counter()
            page.get_by_role("button", name=button).click()
            done()
            timings[name] = round(time.perf_counter() - t0, 1)
            page.wait_for_timeout(500)  # let plotly finish drawing
            page.screenshot(path=str(OUT / f"{len(timings)}-{name}.png"), full_page=True)

        # 1. model & task
        act("model", "Load", lambda: page.get_by_text("1,115,776 parameters", exact=False).wait_for())
        act("knowledge", "What does it know?",
            lambda: page.locator(".js-plotly-plot").first.wait_for())
        # 2. localise (the first localiser in the list: circuits, attribution patching)
        page.get_by_role("link", name="Localise").click()
        page.get_by_role("button", name="Run localiser").wait_for()
        act("localise", "Run localiser", lambda: page.get_by_text("top 20 sites").wait_for())
        assert page.locator(".js-plotly-plot").count() >= 2
        # 3. edit: NPO on the whole model
        page.get_by_role("link", name="Edit").click()
        op = page.get_by_role("combobox", name="operator")
        op.wait_for()
        op.click()
        page.keyboard.type("npo")
        page.keyboard.press("Enter")
        page.get_by_role("combobox", name="localisation").wait_for()
        page.wait_for_timeout(1500)  # the rerun after the selection
        act("edit", "Run edit", lambda: page.get_by_text("hook interventions", exact=False).wait_for())
        # 4. probe: original / edited / oracle, relearning attack, parametric traces
        page.get_by_role("link", name="Probe").click()
        page.get_by_role("button", name="Run probes").wait_for()
        act("probe", "Run probes",
            lambda: page.get_by_text("accuracy on the held-out forget half", exact=False).first.wait_for())
        page.get_by_text("Parametric traces of the task", exact=False).first.wait_for()
        titles = page.locator(".js-plotly-plot .gtitle").all_text_contents()
        for name, title in (("relearning", "accuracy on the held-out forget half"),
                            ("traces", "Parametric traces of the task")):
            chart = page.locator(".js-plotly-plot").filter(has_text=title).first
            chart.scroll_into_view_if_needed()
            chart.screenshot(path=str(OUT / f"6-probe-{name}.png"))
        browser.close()
    assert any("Relearning attack" in t for t in titles), titles
    assert any("Parametric traces" in t for t in titles), titles
    (OUT / "timings.json").write_text(json.dumps(timings, indent=1))
    print("page timings (s):", timings, "screenshots:", sorted(p.name for p in OUT.glob("*.png")))
    assert len(list(OUT.glob("*.png"))) == 7
