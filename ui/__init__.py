"""Streamlit-side helpers for the pages: session-state keys, cached resources and rendering.

This is the only package besides the pages that imports streamlit; the logic lives in
``rerank_core``.
"""
