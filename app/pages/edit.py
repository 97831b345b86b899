"""Edit: choose an operator, a localisation and a budget; run it with live progress (loss
parts); keep the edit (save it) for the probe page and for `workbench probe --edit`."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import streamlit as st  # noqa: E402

from common import current, in_workspace, options_form, pipeline, progress, run_safely, state, workspace  # noqa: E402,E501
from workbench.cache import output_dir  # noqa: E402

ss = state()
st.title("Edit")
ctx = current()
if ctx is not None:
    loaded, task = ctx
    from workbench.edit import OPERATORS
    from workbench.registry import config_from_dict
    from workbench.tasks.declared import LEGEND

    name = st.selectbox("operator", OPERATORS.names(), key="op_name",
                        format_func=lambda n: f"{n}: {OPERATORS.get(n).summary}")
    cls = OPERATORS.get(name)
    usable = [k for k, v in ss.localisations.items() if cls.takes(v["loc"])]
    choices = ([] if cls.needs_localisation else ["none (the whole model)"]) + usable
    if not choices:
        st.warning(f"operator {name!r} needs a localisation of {', '.join(sorted(cls.accepts))} sites: run a localiser "
                   f"on the **Localise** page first")
    else:
        which = st.selectbox("localisation", choices, key="op_loc")
        loc_item = ss.localisations.get(which)
        with st.expander("options", expanded=False):
            options = options_form(cls.Config, f"op.{name}")
        has_fraction = any(f == "fraction" for f in cls.Config.__dataclass_fields__)
        if loc_item is not None and has_fraction and "fraction" not in options and "k" not in options:
            options["fraction"] = str(st.select_slider("budget (fraction of the localisation)",
                                                       [0.01, 0.02, 0.05, 0.1, 0.2, 0.5], 0.05, key="op_budget"))
        if st.button("Run edit", type="primary", key="op_run"):
            if run_safely(config_from_dict, cls.Config, options) is not None:
                loc = loc_item["loc"] if loc_item else None
                with progress(f"editing with {name}", "edit"):
                    res = run_safely(pipeline().edit, loaded, task, name, options, localisation=loc)
                if res is not None:
                    ss.edit = {"edit": res.edit, "path": str(res.path), "operator": name,
                               "localiser": which if loc_item else "none", "reused": res.reused}
                    ss.probe = None
    if ss.edit is not None:
        edit = ss.edit["edit"]
        took = "from the cache" if ss.edit["reused"] else f"{ss.timings.get('edit')} s"
        st.success(f"edit **{ss.edit['operator']}** on **{ss.edit['localiser']}**: {edit.changed_params:,} weights in "
                   f"changed tensors, {len(edit.interventions)} hook interventions ({took}).")
        hist = edit.provenance.get("history") or []
        if hist:
            import plotly.graph_objects as go

            fig = go.Figure()
            for key in [k for k in hist[0] if k != "step"]:
                fig.add_trace(go.Scatter(x=[h["step"] for h in hist], y=[h[key] for h in hist], name=key, mode="lines"))
            fig.update_layout(title="loss parts during the edit", xaxis_title="step", template="plotly_white", height=320)
            st.plotly_chart(fig, key="edit_loss")
        if st.button("Accuracy: original / edited / oracle", key="op_acc"):
            with progress("scoring", "accuracy"):
                rows = pipeline().accuracy_table(loaded, task, edit, max_facts=100)
            st.dataframe(rows, width="stretch")
            st.caption(LEGEND)
        keep = st.text_input("keep the edit: save it to", "edits/" + ss.edit["operator"], key="op_keep_dir",
                             help=f"a directory inside the app's workspace {workspace()}")
        if st.button("Save edit", key="op_save"):
            saved = run_safely(lambda: edit.save(output_dir(in_workspace(keep, "edit directory"), "edit",
                                                            "edit.json", option="edit directory", hint="")))
            if saved is not None:
                st.success(f"saved to `{saved}` (edit.safetensors + edit.json); `workbench probe --edit {saved}`")
