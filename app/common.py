"""Shared state and helpers of the Streamlit app. Pages stay thin: they call the library
and its pure `figure_*` functions; this module holds the cached models and the session."""
from __future__ import annotations

import dataclasses
import sys
import time
import traceback
import typing
from contextlib import contextmanager
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the app runs from a checkout: the library sits next to it
    sys.path.insert(0, str(ROOT))

MODELS = ["testbed:dense", "testbed:moe", "smollm2-135m-instruct"]
MAX_MODELS = 4  # models the app keeps loaded (a model, its oracle, the second oracle, one more)


@st.cache_resource(show_spinner=False)
def pipeline():
    """The pipeline (and its loaded models), shared by every page and session."""
    from workbench.cores import use_cores
    from workbench.pipeline import Pipeline

    use_cores()
    return Pipeline(progress=False, max_models=MAX_MODELS)


def load_model(spec: str):
    """A loaded model, shared by every page and session (loaded once per spec)."""
    return pipeline().model(spec)


def state() -> st.session_state.__class__:
    ss = st.session_state
    ss.setdefault("model_spec", None)
    ss.setdefault("task_name", "default")
    ss.setdefault("localisations", {})  # label -> {"loc": Localisation, "path": str, "seconds": float}
    ss.setdefault("edit", None)  # {"edit": Edit, "path": str, "operator": str, "localiser": str}
    ss.setdefault("probe", None)  # ProbeResult
    ss.setdefault("timings", {})  # action -> seconds
    return ss


def current():
    """(loaded model, task) of this session, or None after telling the user what to do."""
    ss = state()
    if not ss.model_spec:
        st.info("Pick a model and a task first, on the **Model & task** page.")
        return None
    loaded = run_safely(load_model, ss.model_spec)
    task = run_safely(loaded.task, ss.task_name) if loaded is not None else None
    return None if task is None else (loaded, task)


@contextmanager
def progress(label: str, key: str):
    """A progress bar fed by every library progress bar (workbench.progress.listen), the
    elapsed time recorded under `key` in the session's timings."""
    from workbench.progress import listen

    bar = st.progress(0.0, text=label)
    t0 = time.perf_counter()

    def on_step(desc, n, total, postfix):
        frac = min(1.0, n / total) if total else 0.0
        bar.progress(frac, text=f"{label}: {desc} {n}/{total or '?'} {postfix}".strip())

    with listen(on_step):
        yield bar
    secs = time.perf_counter() - t0
    state().timings[key] = round(secs, 2)
    bar.progress(1.0, text=f"{label}: done in {secs:.1f} s")


def workspace() -> Path:
    """The one directory the app writes into and reads studies from: $WORKBENCH_RUNS, else
    `runs/` at the repository root (the app has no login: it never touches another path)."""
    import os

    return Path(os.environ.get("WORKBENCH_RUNS", ROOT / "runs")).resolve()


def in_workspace(text: str, what: str) -> Path:
    """`text` (relative to the workspace, or absolute) as a path inside the workspace; anything
    that resolves outside it (`..`, another absolute path, a link out) is refused with one line."""
    from workbench.errors import WorkbenchInputError

    root = workspace()
    path = (root / text.strip()).resolve() if text.strip() else root
    if path != root and root not in path.parents:
        raise WorkbenchInputError(f"{what} {text!r} is outside the app's workspace {str(root)!r}: expected a path "
                                  f"inside it (relative paths are taken from there)")
    return path


def app_model(spec: str) -> str:
    """A model spec the app may load: a known spec, a testbed spec or a hub id as given; a local
    directory only inside the workspace (the app has no login: it reads no other path)."""
    text = spec.strip()
    if text.startswith(("/", ".", "~")) or Path(text).exists():
        return str(in_workspace(str(Path(text).expanduser()), "model directory"))
    return text


def run_safely(fn, *args, **kwargs):
    """Call fn; a user mistake (`WorkbenchInputError`) becomes a one-line error box. Anything
    else is a bug: an error box that says so (the traceback goes to the server's log).
    Returns None on error."""
    from workbench.errors import WorkbenchInputError

    try:
        return fn(*args, **kwargs)
    except WorkbenchInputError as exc:
        st.error(str(exc))
    except Exception as exc:  # a bug, not the user's input
        traceback.print_exc()
        st.error(f"bug: {type(exc).__name__}: {exc} (an error in the workbench, not in your input; the traceback "
                 f"is in the server's log)")
    return None


def options_form(config_cls, key: str) -> dict:
    """A text input per option of a frozen config dataclass (prefilled with the default);
    returns only the options the user changed, as strings for `config_from_dict`."""
    out = {}
    hints = typing.get_type_hints(config_cls)
    fields = [f for f in dataclasses.fields(config_cls) if f.init]
    cols = st.columns(3)
    for i, f in enumerate(fields):
        default = f.default if f.default is not dataclasses.MISSING else None
        hint = hints[f.name]
        with cols[i % 3]:
            if typing.get_origin(hint) is typing.Literal:
                choices = list(typing.get_args(hint))
                v = st.selectbox(f.name, choices, index=choices.index(default) if default in choices else 0,
                                 key=f"{key}.{f.name}")
                if v != default:
                    out[f.name] = v
            else:
                shown = ",".join(map(str, default)) if isinstance(default, tuple) else ("none" if default is None else str(default))
                v = st.text_input(f.name, shown, key=f"{key}.{f.name}")
                if v.strip() != shown:
                    out[f.name] = v.strip()
    return out


def table_rows(rows: list[dict]):
    import pandas as pd

    return pd.DataFrame(rows)
