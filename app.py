"""Rerank Playground: compare first-stage retrieval with rerankers on your own corpus.

Run with ``streamlit run app.py``. It opens on a built-in sample corpus with example queries. The page
scripts live in ``views/`` (not ``pages/``, so Streamlit's old folder-of-pages mode never runs a page
without this navigation). With sign-in on (``[access] sign_in``), a visitor who is not signed in sees
only the sign-in screen (:func:`ui.identity.gate`).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

HERE = Path(__file__).resolve().parent
VIEWS = HERE / "views"

st.set_page_config(
    page_title="Rerank Playground",
    page_icon=":material/swap_vert:",
    layout="wide",
    initial_sidebar_state="collapsed",
)

from ui import identity, page  # noqa: E402 - after set_page_config

# who is using the app: the sign-in screen (sign-in on, nobody signed in) or the sidebar's identity block
identity.gate(page.settings_or_stop())

pages = [
    st.Page(VIEWS / "compare.py", title="Compare", icon=":material/compare_arrows:", default=True),
    st.Page(VIEWS / "corpus.py", title="Corpus", icon=":material/folder_open:"),
    st.Page(VIEWS / "benchmark.py", title="Benchmark", icon=":material/leaderboard:"),
    st.Page(VIEWS / "labels.py", title="Labels", icon=":material/fact_check:"),
]
page = st.navigation(pages, position="top")

page.run()
