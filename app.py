"""Rerank Playground: compare first-stage retrieval with rerankers on your own corpus.

Run with ``streamlit run app.py``. It opens on a built-in sample corpus with example queries.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

HERE = Path(__file__).resolve().parent
PAGES = HERE / "pages"

st.set_page_config(
    page_title="Rerank Playground",
    page_icon=":material/swap_vert:",
    layout="wide",
    initial_sidebar_state="collapsed",
)

pages = [
    st.Page(PAGES / "compare.py", title="Compare", icon=":material/compare_arrows:", default=True),
    st.Page(PAGES / "corpus.py", title="Corpus", icon=":material/folder_open:"),
    st.Page(PAGES / "benchmark.py", title="Benchmark", icon=":material/leaderboard:"),
    st.Page(PAGES / "labels.py", title="Labels", icon=":material/fact_check:"),
]
page = st.navigation(pages, position="top")

page.run()
