"""Rerank Playground: compare first-stage retrieval with rerankers on your own corpus.

Run with ``streamlit run app.py``. It opens on a built-in sample corpus with example queries.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui import keys, render
from ui.corpus_state import active_corpus

HERE = Path(__file__).resolve().parent
PAGES = HERE / "pages"

st.set_page_config(page_title="Rerank Playground", page_icon=":material/swap_vert:", layout="wide")

pages = [
    st.Page(PAGES / "compare.py", title="Compare", icon=":material/compare_arrows:", default=True),
    st.Page(PAGES / "corpus.py", title="Corpus", icon=":material/folder_open:"),
]
# Pages written separately appear once their files exist.
for filename, title, icon in (
    ("benchmark.py", "Benchmark", ":material/leaderboard:"),
    ("labels.py", "Labels", ":material/fact_check:"),
):
    if (PAGES / filename).exists():
        pages.append(st.Page(PAGES / filename, title=title, icon=icon))

page = st.navigation(pages, position="top")

with st.sidebar:
    st.markdown("### :material/swap_vert: Rerank Playground")
    st.caption("First-stage retrieval against rerankers, on your own corpus, with latency and agreement.")
    current = active_corpus()
    if current is not None:
        unit = "chunks" if current.chunking.mode != "none" else "documents"
        st.markdown(f"**Corpus:** {render.md_escape(current.name)}")
        st.caption(f"{len(current.corpus):,} {unit} · {render.md_escape(current.chunking.describe())}")
    st.page_link(PAGES / "corpus.py", label="Change corpus", icon=":material/upload_file:")
    st.divider()
    st.markdown("**Hosted methods**")
    st.caption(
        "Keys stay in this browser session only: never in the URL, logs or files. "
        "OPENAI_API_KEY / COHERE_API_KEY from the environment or Streamlit secrets work too."
    )
    st.text_input("OpenAI API key", type="password", key=keys.OPENAI_KEY, persist_state="session")
    st.text_input("Cohere API key", type="password", key=keys.COHERE_KEY, persist_state="session")

page.run()
