"""Probe: the original, the edited and the oracle model side by side; parametric traces,
latent probes per layer, relearning-attack curves, generation samples."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import streamlit as st  # noqa: E402

from common import current, pipeline, progress, run_safely, state  # noqa: E402

ss = state()
st.title("Probe")
ctx = current()
if ctx is not None:
    loaded, task = ctx
    from probes import FAMILIES

    if ss.edit is None:
        st.info("No edit yet: the original (and its oracle) are probed alone. Make one on the **Edit** page.")
    families = st.multiselect("probes", FAMILIES.names(), default=["behaviour", "tofu", "muse", "traces", "latent",
                                                                        "relearn"], key="pr_families",
                              format_func=lambda n: f"{n}: {FAMILIES.get(n).summary}")
    c1, c2, c3 = st.columns(3)
    max_facts = c1.number_input("facts per split", 4, 1000, 50, key="pr_facts")
    steps = c2.number_input("relearning steps", 1, 200, 10, key="pr_steps")
    method = c3.selectbox("relearning", ["full", "lora"], key="pr_method")
    if st.button("Run probes", type="primary", key="pr_run"):
        edit = ss.edit["edit"] if ss.edit is not None else None
        config = {"families": tuple(families), "max_facts": int(max_facts), "relearn.steps": int(steps),
                  "relearn.method": method}
        with progress("probing", "probe") as bar:
            def step(role, fam, done, total):
                bar.progress(min(1.0, done / max(total, 1)), text=f"probing {role}: {fam} ({done}/{total})")
            ss.probe = run_safely(pipeline().probe, loaded, task, edit=edit, config=config, on_step=step)
    result = ss.probe
    if result is not None:
        from probes.figures import figure_latent, figure_relearning, figure_summary, figure_traces

        st.subheader("side by side")
        rows = [{"metric": m.name, "better": m.direction, **{r: m.values.get(r) for r in ("original", "edited", "oracle")}}
                for m in result.metrics]
        st.dataframe(rows, width="stretch", height=360)
        for role, why in result.missing.items():
            st.caption(f"{role}: not probed ({why})")
        st.plotly_chart(figure_summary(result), key="pr_summary")
        if "relearn" in result.details:
            st.subheader("relearning attack")
            st.plotly_chart(figure_relearning(result), key="pr_relearn")
        if "traces" in result.details:
            st.subheader("parametric traces")
            st.plotly_chart(figure_traces(result), key="pr_traces")
            edited_rows = result.details["traces"].get("edited", result.details["traces"].get("original", {}))
            st.dataframe([{"vector": r["site"], "cos": round(r["cos"], 3), "jaccard": round(r["jaccard"], 3),
                           "tokens before": " ".join(r["tokens_before"][:8]),
                           "tokens after": " ".join(r["tokens_after"][:8])}
                          for r in edited_rows.get("concept", [])], width="stretch")
        if "latent" in result.details or any(m.family in ("latent", "prompts") for m in result.metrics):
            st.subheader("latent probes per layer")
            st.plotly_chart(figure_latent(result), key="pr_latent")
        samples = result.details.get("behaviour", {})
        if samples:
            st.subheader("generation samples")
            for split in ("forget", "retain"):
                rows = []
                for role, d in samples.items():
                    for s in d["samples"].get(split, []):
                        rows.append({"model": role, "prompt": s["prompt"], "answer": s["answer"],
                                     "generated": s["generated"]})
                st.markdown(f"**{split}**")
                st.dataframe(rows, width="stretch")
        if st.button("Add to the study store (runs/app)", key="pr_store"):
            from workbench.study.runner import store_probe

            path = store_probe(result, loaded.spec, ss.task_name, ss.edit)
            st.success(f"stored in `{path}`: open it on the **Studies** page")
