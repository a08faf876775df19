"""What a page does first: this session's settings and the corpus in use, or a clear message and a stop."""

from __future__ import annotations

from typing import NoReturn

import streamlit as st

from rerank_core.config import Settings
from rerank_core.errors import RerankError
from ui import keys, render, resources
from ui.corpus_state import ActiveCorpus, active_corpus


def show_error(what: str, exc: RerankError) -> None:
    """``what: message`` as an error box, and the fix under it when the error names one."""
    st.error(f"{what}: {render.md_escape(exc.message)}")
    if exc.hint:
        st.caption(f"Fix: {render.md_escape(exc.hint)}")


def _stop() -> NoReturn:
    st.stop()
    raise AssertionError("unreachable")  # pragma: no cover - st.stop raises


def settings_or_stop() -> Settings:
    """Settings from the config file, the environment, Streamlit secrets and this session's key fields."""
    try:
        return resources.session_settings()
    except RerankError as exc:
        show_error("The configuration cannot be read", exc)
        _stop()


def corpus_or_stop() -> ActiveCorpus:
    """The corpus in use; without one, say why (the last load's message if any) and link to the Corpus page."""
    active = active_corpus()
    if active is None:
        notice = st.session_state.get(keys.CORPUS_NOTICE)
        st.error(render.md_escape(notice[1]) if notice else "No corpus is loaded.")
        st.page_link("pages/corpus.py", label="Load a corpus", icon=":material/upload_file:")
        _stop()
    return active
