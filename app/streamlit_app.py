"""The workbench app: `workbench app` (or `streamlit run app/streamlit_app.py`)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import streamlit as st  # noqa: E402

st.set_page_config(page_title="Unlearning workbench", layout="wide")
PAGES = Path(__file__).resolve().parent / "pages"
nav = st.navigation([
    st.Page(str(PAGES / "model.py"), title="Model & task", icon="🧠", default=True),
    st.Page(str(PAGES / "localise.py"), title="Localise", icon="🔎"),
    st.Page(str(PAGES / "edit.py"), title="Edit", icon="✂️"),
    st.Page(str(PAGES / "probe.py"), title="Probe", icon="🧪"),
    st.Page(str(PAGES / "studies.py"), title="Studies", icon="📊"),
])
nav.run()
