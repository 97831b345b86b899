"""Every page of the Streamlit app under streamlit.testing (AppTest): widgets present, the
page's main action completes on the small testbed world, no exception, bad input is an
error box."""
from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
AppTest = pytest.importorskip("streamlit.testing.v1").AppTest

APP = Path(__file__).resolve().parents[2] / "app"
SMALL = "testbed:dense?people=40&attributes=3&steps=600"
TIMEOUT = 300


def page(name: str) -> AppTest:
    return AppTest.from_file(str(APP / "pages" / f"{name}.py"), default_timeout=TIMEOUT)


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def charts(at: AppTest) -> int:
    return len(at.get("plotly_chart"))


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


def test_the_entry_script_lists_every_page():
    at = ok(AppTest.from_file(str(APP / "streamlit_app.py"), default_timeout=TIMEOUT).run())
    assert at.selectbox(key="model_choice").options[0] == "testbed:dense"  # the default page is Model & task
    text = (APP / "streamlit_app.py").read_text()
    for p in ("model", "localise", "edit", "probe", "studies"):
        assert f'"{p}.py"' in text and (APP / "pages" / f"{p}.py").is_file()


def test_model_page_loads_a_model_and_shows_what_it_knows(small_dense):
    at = ok(page("model").run())
    assert at.selectbox(key="model_choice").options[:2] == ["testbed:dense", "testbed:moe"]
    at.selectbox(key="model_choice").select_index(3).run()
    at.text_input(key="model_other").input(SMALL)
    ok(at.button(key="load").click().run())
    assert at.session_state.model_spec == SMALL and at.success
    ok(at.button(key="know").click().run())
    assert charts(at) == 1
    fig = at.get("plotly_chart")[0].proto.spec
    assert "forget" in fig and "retain" in fig
    relation = at.multiselect(key="compose_rel").options[0]
    at.multiselect(key="compose_rel").select(relation).run()
    ok(at.button(key="compose_use").click().run())
    assert at.session_state.task_name == f"default?relations={relation}"
    assert "Task **default?relations=" in at.success[0].value


def test_model_page_bad_input_is_an_error_box_not_a_traceback():
    at = ok(page("model").run())
    at.selectbox(key="model_choice").select_index(3).run()
    at.text_input(key="model_other").input("nonsense:thing")
    ok(at.button(key="load").click().run())
    assert at.error and "unknown model 'nonsense:thing'" in at.error[0].value
    assert at.session_state.model_spec is None


def test_pages_ask_for_a_model_first():
    for name in ("localise", "edit", "probe"):
        at = ok(page(name).run())
        assert at.info and "Model & task" in at.info[0].value


def test_localise_page_runs_a_localiser_and_draws_it(small_dense):
    at = page("localise")
    at.session_state.model_spec = SMALL
    ok(at.run())
    at.selectbox(key="loc_method").select("concept").run()
    ok(at.button(key="loc_run").click().run())
    assert "concept" in at.session_state.localisations
    assert charts(at) >= 2  # heatmap + top sites
    at.selectbox(key="loc_method").select("wagle").run()
    ok(at.button(key="loc_run").click().run())
    assert charts(at) >= 3  # + the agreement matrix of the two
    at.text_input(key="loc.wagle.gamma").input("big").run()
    ok(at.button(key="loc_run").click().run())
    assert at.error and "gamma" in at.error[0].value


def test_localise_page_routing_view_on_the_moe(small_moe):
    at = page("localise")
    at.session_state.model_spec = small_moe.spec
    ok(at.run())
    ok(at.button(key="loc_routing").click().run())
    assert charts(at) == 1


def test_edit_page_runs_an_operator_with_progress(small_dense):
    at = page("edit")
    at.session_state.model_spec = SMALL
    ok(at.run())
    at.selectbox(key="op_name").select("graddiff").run()
    at.text_input(key="op.graddiff.steps").input("4").run()
    ok(at.button(key="op_run").click().run())
    edit = at.session_state.edit
    assert edit["operator"] == "graddiff" and edit["edit"].changed_params > 0
    assert charts(at) == 1  # the loss parts
    ok(at.button(key="op_acc").click().run())
    assert at.dataframe  # original / edited / oracle, held-out columns first, the in-sample ones labelled
    assert {"forget", "retain_in_sample"} <= set(at.dataframe[0].value.columns)
    assert any("held out of every edit" in c.value for c in at.caption)
    needs = page("edit")
    needs.session_state.model_spec = SMALL
    ok(needs.run())
    needs.selectbox(key="op_name").select("sae-clamp").run()
    assert needs.warning and "localisation" in needs.warning[0].value


def test_probe_page_probes_three_models_and_stores_the_result(small_dense, small_dense_oracle, runs):
    from workbench.edit import apply_operator_cached
    from workbench.models import load

    loaded = load(SMALL)
    edit, path, _ = apply_operator_cached(loaded, None, loaded.task(), "graddiff", {"steps": 4}, progress=False)
    at = page("probe")
    at.session_state.model_spec = SMALL
    at.session_state.edit = {"edit": edit, "path": str(path), "operator": "graddiff", "localiser": "none",
                             "reused": True}
    ok(at.run())
    at.multiselect(key="pr_families").set_value(["behaviour", "traces", "relearn"]).run()
    at.number_input(key="pr_facts").set_value(10).run()
    at.number_input(key="pr_steps").set_value(3).run()
    ok(at.button(key="pr_run").click().run())
    result = at.session_state.probe
    assert set(result.models) == {"original", "edited", "oracle"}
    assert charts(at) >= 3  # summary, relearning, traces
    ok(at.button(key="pr_store").click().run())
    assert (runs / "app" / "study.sqlite").is_file()

    st = page("studies")
    ok(st.run())
    assert st.selectbox(key="st_pick").value.endswith("app")
    assert charts(st) >= 3  # Pareto, relearning, traces
    assert st.selectbox(key="st_cell").value  # a cell to open
    assert charts(st) >= 4  # + the cell's relearning curves


def test_studies_page_without_a_store_says_what_to_do(runs):
    at = ok(page("studies").run())
    assert at.info and "workbench study run" in at.info[0].value
    at.text_input(key="st_path").input(str(runs / "nowhere")).run()
    assert at.error and "study.sqlite" in at.error[0].value
