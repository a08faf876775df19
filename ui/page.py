"""What a page does first: this session's settings and the corpus in use, or a clear message and a stop."""

from __future__ import annotations

from typing import NoReturn

import streamlit as st

from rerank_core.config import Settings
from rerank_core.errors import RerankError
from rerank_core.workspace import StoredCorpus, UnknownCorpus
from ui import corpus_state, keys, render, resources


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


def corpus_or_stop(settings: Settings) -> StoredCorpus:
    """The corpus named in the URL (or this session's, or the sample); without one, say why and link to
    the Corpus page. A URL naming a corpus this server does not hold is an error, never a silent switch."""
    try:
        return corpus_state.resolve(settings)
    except UnknownCorpus as exc:
        wanted = st.query_params.get(keys.CORPUS, "")
        st.error(
            f"This link names corpus `{render.md_escape(wanted)}`, which this server does not hold: "
            f"{render.md_escape(exc.message)}",
            icon=":material/link_off:",
        )
        if exc.hint:
            st.caption(f"Fix: {render.md_escape(exc.hint)}")
    except (RerankError, ImportError, OSError) as exc:
        st.error(f"The corpus cannot be loaded: {render.md_escape(str(exc))}", icon=":material/error:")
    st.page_link("views/corpus.py", label="Open the Corpus page", icon=":material/folder_open:")
    _stop()


def corpus_caption(stored: StoredCorpus) -> str:
    """One line on the corpus in use: name, size, origin and id (for every page's header)."""
    unit = stored.info.unit
    origin = " · built-in sample" if stored.is_sample else ""
    memory = " · kept in memory only" if stored.directory is None else ""
    return (
        f"Corpus **{render.md_escape(stored.name)}** · {len(stored.corpus):,} {unit}{origin}{memory} · "
        f"id `{stored.id}`"
    )
