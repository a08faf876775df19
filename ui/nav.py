"""Keep every page inside app.py's navigation.

Streamlit still has the old ``pages/`` folder mode: on a freshly started server, a first visit to a
deep link such as ``/corpus`` runs ``pages/corpus.py`` on its own, without ``app.py`` (no top
navigation, no wide layout). ``st.navigation`` switches that mode off for the process, but only
once ``app.py`` has run. A page calls :func:`run_inside_app` first: in that situation it switches
the old mode off and reruns, so ``app.py`` runs and shows the same page.
"""

from __future__ import annotations

import streamlit as st

_DONE = "nav_rerun_done"


def run_inside_app() -> None:
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # pragma: no cover - a Streamlit without the old mode
        return
    if PagesManager.uses_pages_directory and not st.session_state.get(_DONE):
        st.session_state[_DONE] = True  # once per session, so this can never loop
        PagesManager.uses_pages_directory = False
        st.rerun()
