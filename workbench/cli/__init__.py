"""The `workbench` command (typer): one module per command group, no domain logic here (the
commands call `workbench.pipeline` and print). A user mistake ends in one `error: ...` line,
exit code 2; anything else is a bug and shows its traceback, exit code 1."""
from __future__ import annotations

import sys

import typer

from .bench import bench_cmd
from .demo import app_cmd, demo
from .edit import edit_cmd
from .localise import agreement_cmd, localise_cmd
from .models import models_app, sites_app, tasks_app
from .probe import probe_cmd
from .sae import sae_app
from .study import study_app

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Interpretability-driven unlearning workbench: localise, edit, probe.")
app.add_typer(models_app, name="models")
app.add_typer(sites_app, name="sites")
app.add_typer(tasks_app, name="tasks")
app.add_typer(sae_app, name="sae")
app.add_typer(study_app, name="study")
app.command("localise")(localise_cmd)
app.command("agreement")(agreement_cmd)
app.command("edit")(edit_cmd)
app.command("probe")(probe_cmd)
app.command("app")(app_cmd)
app.command("demo")(demo)
app.command("bench")(bench_cmd)


def main() -> None:
    import signal

    def stop(signum, frame):  # SIGTERM as Ctrl-C: every `finally` runs, so training children are stopped
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, stop)
    app()


if __name__ == "__main__":
    sys.exit(main())
