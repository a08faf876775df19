"""Search engines as first stages, set up in the app: pick an engine, fill its settings, test the
connection (one hit), and it is offered as a first stage like any other, for this session.

The form comes from the engine class (:mod:`rerank_core.engine_form`). Typed settings live in this
session only (``keys.ENGINE_OPTIONS``) and replace the engine's ``[methods.<name>]`` section of the
settings file for this session (:func:`apply`, called by ``resources.session_settings``); secrets are
password fields of the session (``keys.secret_key``), never in the URL, the snippet or any file. A
failed test says what is wrong and names the setting to fix.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from rerank_core import engine_form
from rerank_core.config import Settings
from rerank_core.types import Corpus
from ui import keys, render

__all__ = ["apply", "render_engine_setup", "session_engines"]


def session_engines() -> dict[str, dict[str, Any]]:
    """The engine settings typed in this session: {engine: options}."""
    return dict(st.session_state.get(keys.ENGINE_OPTIONS) or {})


def apply(settings: Settings) -> Settings:
    """``settings`` with each engine typed in this session replacing its ``[methods.<name>]``."""
    typed = session_engines()
    if not typed:
        return settings
    from dataclasses import replace

    return replace(settings, methods={**settings.methods, **{k: dict(v) for k, v in typed.items()}})


def _typed(page: str, engine: str) -> dict[str, Any]:
    out = {}
    for field in engine_form.engine_fields(engine):
        key = keys.engine_field_key(page, engine, field.name)
        if key in st.session_state:
            out[field.name] = st.session_state[key]
    return out


def _save(
    page: str, engine: str, settings: Settings, corpus: Corpus | None, *, test: bool, use: bool
) -> None:
    """Form callback: read the fields, keep them for the session, test the connection if asked."""
    checks = dict(st.session_state.get(keys.ENGINE_CHECKS) or {})
    try:
        options = engine_form.options_from_form(engine, _typed(page, engine))
    except Exception as exc:  # noqa: BLE001 - shown with the form
        checks[engine] = engine_form.ConnectionCheck(ok=False, message=str(exc))
        st.session_state[keys.ENGINE_CHECKS] = checks
        return
    engines = session_engines()
    engines[engine] = options
    st.session_state[keys.ENGINE_OPTIONS] = engines
    if test:
        query = str(st.session_state.get(keys.engine_query_key(page, engine)) or "test")
        checks[engine] = engine_form.check_connection(
            engine, engine_form.with_engine(settings, engine, options), corpus, query
        )
        st.session_state[keys.ENGINE_CHECKS] = checks
    if use and page == "cmp":
        st.session_state[keys.FIRST_STAGE] = engine


def _forget(engine: str) -> None:
    engines = session_engines()
    engines.pop(engine, None)
    st.session_state[keys.ENGINE_OPTIONS] = engines
    checks = dict(st.session_state.get(keys.ENGINE_CHECKS) or {})
    checks.pop(engine, None)
    st.session_state[keys.ENGINE_CHECKS] = checks
    if st.session_state.get(keys.FIRST_STAGE) == engine:
        st.session_state[keys.FIRST_STAGE] = "bm25"


def _show_check(check: engine_form.ConnectionCheck, engine: str) -> None:
    if check.ok and check.hit is not None:
        hit = check.hit
        st.success(
            f"Connected to {render.md_escape(check.label)}. One hit: `{render.md_escape(hit.doc_id)}` "
            f"(score {hit.score:.4g})",
            icon=":material/check_circle:",
        )
        shown = (f"**{render.md_escape(hit.title)}** · " if hit.title else "") + render.md_escape(
            render.snippet(hit.text or "(text from the corpus by id)", 300)
        )
        st.caption(shown)
    elif check.ok:
        st.info(
            f"Connected to {render.md_escape(check.label)}, but the test query found nothing: try another query.",
            icon=":material/search_off:",
        )
    else:
        st.error(f"{engine}: {render.md_escape(check.message)}", icon=":material/error:")
        if check.setting:
            st.markdown(f"Setting to fix: `{check.setting}`")
        if check.hint:
            st.caption(f"Fix: {render.md_escape(check.hint)}")


def render_engine_setup(settings: Settings, corpus: Corpus | None, *, page: str, query: str = "") -> None:
    """The engine picker, its settings form, "Test connection" and the TOML snippet (inside the
    caller's container). ``page`` keeps the widget keys of two pages apart."""
    names = engine_form.engine_names()
    engine = st.selectbox(
        "Engine",
        names,
        key=keys.engine_pick_key(page),
        help="The engine that already serves your corpus. Settings typed here last for this session; put them "
        "in rerank.toml to keep them (the snippet below).",
    )
    if engine is None:
        return
    current = settings.method_options(engine)
    fields = engine_form.engine_fields(engine)
    with st.form(key=keys.engine_form_key(page, engine), border=False):
        st.caption(
            'Values are read as TOML when they are one (numbers, true/false, [lists], { tables }, "quoted '
            'text"); anything else is text. Empty = the default. * = required.'
        )
        main = [f for f in fields if not f.advanced]
        left, right = st.columns(2)
        for i, field in enumerate(main):
            with left if i % 2 == 0 else right:
                _field(page, engine, field, current)
        with st.expander("Timeouts, retries and rate limit"):
            for field in fields:
                if field.advanced:
                    _field(page, engine, field, current)
        secrets = engine_form.secret_names(engine)
        for name in secrets:
            st.text_input(
                f"{name} (secret, this session only)",
                type="password",
                key=keys.secret_key(name),
                persist_state="session",
                help="Never put in the URL, the snippet or any file; the environment or Streamlit secrets work too.",
            )
        st.text_input(
            "Test search text",
            value=query or "test",
            key=keys.engine_query_key(page, engine),
            help="Test connection searches for this text and shows the first hit.",
        )
        b1, b2 = st.columns(2)
        b1.form_submit_button(
            "Test connection",
            icon=":material/cable:",
            on_click=_save,
            args=(page, engine, settings, corpus),
            kwargs={"test": True, "use": False},
        )
        b2.form_submit_button(
            "Use as first stage" if page == "cmp" else "Keep for this session",
            icon=":material/check:",
            on_click=_save,
            args=(page, engine, settings, corpus),
            kwargs={"test": True, "use": True},
        )
    check = (st.session_state.get(keys.ENGINE_CHECKS) or {}).get(engine)
    if check is not None:
        _show_check(check, engine)
    typed = session_engines().get(engine)
    if typed is not None:
        st.caption(
            f"**{engine}** is a first stage for this session"
            + (" (its settings here replace the settings file's for this session)." if current else ".")
            + " For rerank.toml:"
        )
        st.code(engine_form.toml_snippet(engine, typed), language="toml")
        st.button(
            f"Forget the {engine} settings typed here",
            key=keys.engine_forget_key(page, engine),
            on_click=_forget,
            args=(engine,),
            icon=":material/delete:",
        )


def _field(page: str, engine: str, field: engine_form.EngineField, current: dict[str, Any]) -> None:
    key = keys.engine_field_key(page, engine, field.name)
    value = current.get(field.name, field.default)
    label = field.name + (" *" if field.required else "")
    example = field.example.strip('"') if field.example else ""
    if field.is_bool:
        st.checkbox(label, value=bool(value), key=key)
        return
    st.text_input(
        label,
        value=engine_form.show_value(current.get(field.name)) if field.name in current else "",
        key=key,
        placeholder=engine_form.show_value(field.default) or (f"e.g. {example}" if example else "unset"),
    )
