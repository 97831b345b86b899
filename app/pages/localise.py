"""Localise: run any localiser with a progress bar; heatmap over layer x component, top sites,
agreement between the localisers run in this session, SAE feature cards, MoE routing."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import streamlit as st  # noqa: E402

from common import current, options_form, pipeline, progress, run_safely, state  # noqa: E402

ss = state()
st.title("Localise")
ctx = current()
if ctx is not None:
    loaded, task = ctx
    from workbench.localise import LOCALISERS, agreement_matrix
    from workbench.localise.figures import figure_scores, figure_top_sites
    from workbench.registry import config_from_dict

    method = st.selectbox("localiser", LOCALISERS.names(), key="loc_method",
                          format_func=lambda n: f"{n}: {LOCALISERS.get(n).summary}")
    with st.expander("options"):
        options = options_form(LOCALISERS.get(method).Config, f"loc.{method}")
    label = st.text_input("label", method, key=f"loc_label.{method}", help="the name this localisation gets in this session")
    if st.button("Run localiser", type="primary", key="loc_run"):
        if run_safely(config_from_dict, LOCALISERS.get(method).Config, options) is not None:
            with progress(f"localising with {method}", "localise"):
                res = run_safely(pipeline().localise, loaded, task, method, options)
            if res is not None:
                ss.localisations[label] = {"loc": res.localisation, "path": str(res.path), "reused": res.reused,
                                           "seconds": ss.timings["localise"]}
    if ss.localisations:
        shown = st.selectbox("show", list(ss.localisations), index=len(ss.localisations) - 1, key="loc_show")
        item = ss.localisations[shown]
        loc = item["loc"]
        took = "from the cache" if item["reused"] else f"{item['seconds']} s"
        st.caption(f"{len(loc.sites)} {loc.kind} sites; {took}; saved at `{item['path']}`")
        frac = st.select_slider("budget (fraction of the sites)", [0.01, 0.02, 0.05, 0.1, 0.2], 0.05, key="loc_frac")
        st.plotly_chart(figure_scores(loc, frac), key="loc_heatmap")
        left, right = st.columns(2)
        with left:
            st.plotly_chart(figure_top_sites(loc, 20), key="loc_top")
        with right:
            st.dataframe([{"rank": i + 1, "site": str(s), "score": float(v)} for i, (s, v) in enumerate(loc.ranked()[:50])],
                         width="stretch", height=420)
        if len(ss.localisations) > 1:
            from workbench.study.report import figure_agreement

            m = agreement_matrix({k: v["loc"] for k, v in ss.localisations.items()}, frac)
            st.plotly_chart(figure_agreement({loaded.spec: m}), key="loc_agreement")
        if loc.kind == "sae_feature" and st.button("SAE feature cards", key="loc_cards"):
            from workbench.localise.sae_features import feature_cards
            from workbench.sae import cached_sae

            top = loc.top(k=8)
            texts = [e.text for e in task.examples("forget") if e.kind != "mcq"]
            with progress("feature cards", "cards"):
                cards = feature_cards(loaded, cached_sae(loc.provenance["sae"]), top[0].layer,
                                      [s.feature for s in top], texts)
            for card in cards:
                with st.container(border=True):
                    st.markdown(f"**feature {card['feature']}**, firing rate {card['firing_rate']:.3f}  \n"
                                f"tokens: `{' '.join(card['top_tokens'])}`")
                    for c in card["contexts"]:
                        st.text(f"{c['activation']:7.2f}  {c['text']}")
    if "expert" in loaded.arch.units:
        st.subheader("MoE routing")
        if st.button("Show routing on forget vs retain text", key="loc_routing"):
            from workbench.localise.experts import routing
            from workbench.localise.figures import figure_routing
            from workbench.tasks.prompts import split_examples

            with progress("routing", "routing"):
                fa, _ = routing(loaded, split_examples(task, "forget", 100, 0))
                ra, _ = routing(loaded, split_examples(task, "retain", 100, 0))
            st.plotly_chart(figure_routing(fa, ra), key="loc_routing_fig")
