"""Model & task: pick a model and a forget task, see what the model knows per surface form."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import streamlit as st  # noqa: E402

from common import MODELS, app_model, load_model, progress, run_safely, state  # noqa: E402

ss = state()
st.title("Model & task")
choice = st.selectbox("model", [*MODELS, "other (a Hugging Face directory or hub id)"], key="model_choice",
                      index=MODELS.index(ss.model_spec) if ss.model_spec in MODELS else 0)
spec = st.text_input("model path or hub id", key="model_other") if choice.startswith("other") else choice
task_name = st.text_input("forget task", ss.task_name, key="task_input",
                          help="default (the model's own task) or real:TOPIC (e.g. real:France, pretrained models)")
if st.button("Load", type="primary", key="load"):
    with progress("loading", "load"):
        typed = spec
        spec = run_safely(app_model, spec) if spec else None  # a local directory: inside the workspace only
        loaded = run_safely(load_model, spec) if spec else None
        task = run_safely(loaded.task, task_name) if loaded is not None else None
    if not typed:
        st.error("model: give a model path or hub id")
    if task is not None:
        if ss.model_spec != spec or ss.task_name != task_name:
            ss.localisations, ss.edit, ss.probe = {}, None, None  # results of another model or task
        ss.model_spec, ss.task_name = spec, task_name

if ss.model_spec:
    loaded = load_model(ss.model_spec)
    task = loaded.task(ss.task_name)
    st.success(f"**{loaded.spec}**: {loaded.n_params:,} parameters, {loaded.model.config.num_hidden_layers} layers "
               f"({loaded.source}). Task **{task.name}**: " +
               ", ".join(f"{s} {len(task.facts(s))} facts" for s in ("forget", "retain", "neighbour")))
    if loaded.source == "testbed":
        from workbench.models.knowledge import floor_verdict

        verdict = run_safely(floor_verdict, loaded.spec)
        if verdict is not None and not verdict.met:
            st.warning(f"{loaded.spec} is below the testbed quality floor: {verdict.summary()}. Its verdicts are "
                       f"not comparable with a model that meets it; train it longer (a larger `steps=` in the spec).")
    with st.expander("compose a forget task: only some relations or people of the forget split"):
        base = loaded.task(ss.task_name.partition("?")[0])
        forget = base.facts("forget")
        rels = st.multiselect("relations", sorted({f.relation for f in forget}), key="compose_rel")
        subs = st.multiselect("people / subjects", sorted({f.subject for f in forget}), key="compose_sub")
        if st.button("Use this task", key="compose_use", disabled=not (rels or subs)):
            from urllib.parse import urlencode

            q = urlencode({k: ",".join(v) for k, v in (("relations", rels), ("subjects", subs)) if v})
            composed = f"{ss.task_name.partition('?')[0]}?{q}"
            if run_safely(loaded.task, composed) is not None:
                ss.task_name = composed
                ss.localisations, ss.edit, ss.probe = {}, None, None
                st.rerun()
    with st.expander("a few facts in every surface form"):
        fact = task.facts("forget")[0]
        st.dataframe([{"form": n, "prompt": task.render(fact, n).prompt, "answer": task.render(fact, n).answer}
                      for n in task.forms if fact.relation in task.forms[n].templates], width="stretch")
    if st.button("What does it know?", key="know"):
        from workbench.models.knowledge import knowledge

        with progress("scoring every fact in every form", "knowledge"):
            table = knowledge(loaded.model, loaded.tokenizer, task)
        ss.knowledge = {"spec": ss.model_spec, "table": table}
    if getattr(ss, "knowledge", None) and ss.knowledge["spec"] == ss.model_spec:
        from workbench.localise.figures import figure_knowledge

        table = ss.knowledge["table"]
        st.plotly_chart(figure_knowledge(table), key="knowledge_fig")
        st.dataframe([{"split": s, **{g: round(c.accuracy, 3) for g, c in cells.items()}} for s, cells in table.items()],
                     width="stretch")
