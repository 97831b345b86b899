"""Studies: browse a study store (SQLite), filter the cells, Pareto and relearning plots,
open one cell's details."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import streamlit as st  # noqa: E402

from common import in_workspace, run_safely, state, workspace  # noqa: E402

state()
st.title("Studies")
runs = workspace()
found = sorted(str(p.parent) for p in runs.glob("*/study.sqlite")) if runs.is_dir() else []
c1, c2 = st.columns([2, 3])
picked = c1.selectbox("run directory", found or ["(none found)"], key="st_pick",
                      help=f"every <dir>/study.sqlite under {runs.resolve()}")
typed = c2.text_input("or a run directory / study.sqlite path (inside the workspace)", "", key="st_path")
where = run_safely(in_workspace, typed, "study path") if typed else (Path(picked) if found else None)
if where is not None and where.suffix == ".sqlite":
    where = where.parent
if where is None:
    st.info("No study store yet: run `workbench study run default` (or `workbench demo`), or add a probe from the "
            "**Probe** page.")
elif not (where / "study.sqlite").is_file():
    st.error(f"{str(where)!r} holds no study.sqlite: expected a run directory written by `workbench study run`")
else:
    from workbench.study import Store
    from workbench.study.report import (figure_agreement, figure_pareto, figure_study_relearning,
                                        figure_study_traces, floor_warnings, reference_rows, study_agreement,
                                        study_rows)

    with Store(where / "study.sqlite") as store:
        rows = study_rows(store)
        refs = reference_rows(store)
        f1, f2, f3 = st.columns(3)
        models = f1.multiselect("models", sorted({r["model"] for r in rows}), key="st_models")
        locs = f2.multiselect("localisers", sorted({r["localiser"] for r in rows}), key="st_locs")
        ops = f3.multiselect("operators", sorted({r["operator"] for r in rows}), key="st_ops")
        keep = [r for r in rows if (not models or r["model"] in models) and (not locs or r["localiser"] in locs)
                and (not ops or r["operator"] in ops)]
        ids = [r["cell_id"] for r in keep]
        st.caption(f"{len(keep)} of {len(rows)} cells; {sum(r['status'] == 'failed' for r in keep)} failed")
        for line in floor_warnings(keep):
            st.warning(line)
        st.dataframe([{k: v for k, v in r.items() if k not in ("result", "localisation", "edit")} for r in keep],
                     width="stretch", height=300)
        st.plotly_chart(figure_pareto(keep, refs), key="st_pareto")
        st.plotly_chart(figure_study_relearning(store, ids), key="st_relearn")
        st.plotly_chart(figure_study_traces(keep), key="st_traces")
        matrices = study_agreement(store, ids)
        if matrices:
            st.plotly_chart(figure_agreement(matrices), key="st_agreement")
    st.subheader("one cell")
    labels = {r["cell_id"]: f"{r['model']} | {r['localiser']} -> {r['operator']} (seed {r['seed']})" for r in keep}
    cell = st.selectbox("cell", list(labels), format_func=labels.get, key="st_cell") if labels else None
    if cell:
        row = next(r for r in keep if r["cell_id"] == cell)
        if row["status"] == "failed":
            st.error(row["error"])
        elif row["result"]:
            from probes import ProbeResult
            from probes.figures import figure_relearning

            result = run_safely(ProbeResult.load, row["result"])
            if result is not None:
                st.dataframe([{"metric": m.name, **{r: m.values.get(r) for r in ("original", "edited", "oracle")}}
                              for m in result.metrics], width="stretch", height=300)
                st.plotly_chart(figure_relearning(result), key="st_cell_relearn")
