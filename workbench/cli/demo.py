"""`workbench demo` (the whole story on the embedded default) and `workbench app`."""
from __future__ import annotations

import os
import sys
import time
from typing import Optional

import typer

from .common import command, threads
from .models import print_quality, print_real
from .study import SEEDS_OPT, print_headline, with_seeds

LOOPBACK = "127.0.0.1"


@command
def app_cmd(port: int = typer.Option(8501, help="the port to serve on"),
            host: str = typer.Option(LOOPBACK, help="the address to serve on; the default serves this machine only. "
                                                    "The app has no login: serve elsewhere only on a network you trust"),
            headless: bool = typer.Option(True, help="do not open a browser window")):
    """Start the Streamlit app (model & task, localise, edit, probe, studies)."""
    import ipaddress
    from pathlib import Path

    from ..errors import MissingInputError, WorkbenchInputError

    script = Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py"
    if not script.is_file():
        raise MissingInputError(f"the app is not at {str(script)!r}: it runs from a checkout of the repository")
    if not 0 < port < 65536:
        raise WorkbenchInputError(f"--port {port}: expected a port number in 1..65535")
    try:
        local = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        raise WorkbenchInputError(f"--host {host!r}: expected an IP address (default {LOOPBACK}: this machine "
                                  f"only; 0.0.0.0: every interface)") from None
    if not local:
        typer.echo(f"warning: serving on {host}: the app has no login, and anyone who reaches port {port} can load "
                   f"models, run edits and read results", err=True)
    typer.echo(f"the app: http://{'localhost' if local else host}:{port}  (Ctrl-C stops it)")
    sys.stdout.flush()
    # replace this process by the server, so that stopping it (Ctrl-C, SIGTERM) stops the app; the
    # app shows its own one-line errors, Streamlit none of its tracebacks (they name server paths)
    os.execv(sys.executable, [sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(port),
                              "--server.address", host, "--server.headless", str(headless).lower(),
                              "--browser.gatherUsageStats", "false", "--client.showErrorDetails", "none"])


@command
def demo(study: str = typer.Option("default", help="the study to run: a TOML file or a bundled study"),
         out: Optional[str] = typer.Option(None, help="the run directory (default: runs/<study name>)"),
         smollm2: bool = typer.Option(False, help="also load SmolLM2-135M-Instruct and show what it knows"),
         seeds: Optional[str] = SEEDS_OPT):
    """The whole story on the embedded default: train the testbed models and their oracle
    twins (once, cached), run the default study (every localiser, the main operators, the core
    probes incl. a relearning attack, each next to the original and the oracle), print the
    headline table and write the HTML report."""
    from ..models import load
    from ..study import load_study, run_study, write_report
    from ..study.runner import prepare_testbeds

    threads()
    t0 = time.time()
    st = with_seeds(load_study(study), seeds)
    typer.echo("[1/4] the testbed models and their oracle twins (trained once, two at a time, then cached)")
    specs = prepare_testbeds([m.spec for m in st.models])
    for tb in specs:
        if not tb.oracle:
            print_quality([load(str(tb), progress=False), load(str(tb.twin()), progress=False)], brief=True)
    typer.echo(f"\n[2/4] study {st.name!r}: {len(st.cells())} cells (localise -> edit -> probe), "
               f"results stored as they finish")
    run = run_study(st, out=out)
    cells = [c.id for c in run.cells]
    typer.echo(f"\n[3/4] headline ({len(run.ran)} cells run now, {len(run.skipped)} from the store, "
               f"{len(run.failed)} failed); edited-model values, the original and the oracle as references")
    print_headline(run.store_path, cells)
    report = write_report(run.store_path, ids=cells)
    typer.echo(f"\n[4/4] report: {report.resolve()}  (one self-contained HTML file: open it in a browser)")
    typer.echo(f"      store: {run.store_path.resolve()}  (`workbench study status|report|export {st.name}`)")
    typer.echo("      the app: `workbench app`, then http://localhost:8501 (Studies page: this store)")
    if smollm2:
        typer.echo("\n=== smollm2-135m-instruct on the real-knowledge task ===")
        print_real(load("smollm2-135m-instruct"))
    typer.echo(f"\ndemo finished in {time.time() - t0:.0f} s")
