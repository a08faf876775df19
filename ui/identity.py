"""Who uses this session: sign-in through Streamlit's ``st.login``, the actor and its role, the sidebar block.

With ``[access] sign_in`` off (the default), the actor is named by the sidebar's judge field and is an
admin, exactly as before (or the demo's ``anonymous_role`` in demo mode). With it on, a visitor who is not
signed in sees only the sign-in screen; a signed-in user is named by their email (the provider's ``sub``
when it sends none) and gets the role the ``[access]`` lists give them. The OpenID Connect provider is
configured under ``[auth]`` in ``.streamlit/secrets.toml`` (see ``.streamlit/secrets.example.toml``).

:func:`gate` runs in ``app.py`` before every page: it draws the sign-in screen (and stops) or the
sidebar block that says who is signed in and with which role. Pages and callbacks call :func:`current`,
which draws nothing.
"""

from __future__ import annotations

import uuid
from typing import NoReturn

import streamlit as st

from rerank_core.access import AccessDenied, Actor, Permission, Role, anonymous_actor, signed_in_actor
from rerank_core.config import Settings
from ui import keys, labelling, render

ROLE_WORDS = {
    Role.VIEWER: "browse, compare and export",
    Role.LABELLER: "browse, compare, export and grade",
    Role.ADMIN: "everything: grade, upload, delete corpora, run benchmarks, manage keys",
}


class NotSignedIn(AccessDenied):
    kind = "not-signed-in"


def _user() -> dict:
    try:
        return dict(st.user.to_dict())
    except Exception:  # noqa: BLE001 - no user information: treated as not signed in
        return {}


def current(settings: Settings) -> Actor:
    """The actor of this session (draws nothing). Raises :class:`NotSignedIn` when sign-in is on and the
    visitor is not signed in, :class:`AccessDenied` when the configuration gives them no role."""
    if not settings.access.sign_in:
        return anonymous_actor(labelling.current_judge(), settings.access, settings.demo)
    user = _user()
    if not user.get("is_logged_in"):
        raise NotSignedIn("sign in to use this app.", hint="press Sign in")
    identity = str(user.get("email") or user.get("sub") or "").strip()
    if not identity:
        raise AccessDenied(
            "the sign-in provider sent neither an email nor a subject for this user.",
            hint="ask the admin to request the email scope from the provider",
        )
    return signed_in_actor(identity, settings.access)


def quota_user(actor: Actor) -> str:
    """Whose quota a run counts against: the signed-in identity, else this browser session."""
    if actor.signed_in:
        return actor.identity
    if keys.SESSION_ID not in st.session_state:
        st.session_state[keys.SESSION_ID] = f"session-{uuid.uuid4().hex[:8]}"
    return st.session_state[keys.SESSION_ID]


def typed_keys_allowed(settings: Settings, actor: Actor | None) -> bool:
    """API keys typed into the app are used only by an admin outside demo mode (a demo's keys stay on the server)."""
    return not settings.demo.enabled and actor is not None and actor.can(Permission.MANAGE_KEYS)


def _stop() -> NoReturn:
    st.stop()
    raise AssertionError("unreachable")  # pragma: no cover


def _auth_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # noqa: BLE001 - no secrets file at all
        return False


def _sign_in_screen(settings: Settings) -> NoReturn:
    st.title("Rerank Playground")
    st.markdown("Compare first-stage retrieval with rerankers, side by side. **Sign in to continue.**")
    if not _auth_configured():
        st.error(
            "Sign-in is switched on (`[access] sign_in` in rerank.toml, or RERANK_SIGN_IN), but Streamlit's "
            "secrets have no `[auth]` section naming an OpenID Connect provider.",
            icon=":material/lock:",
        )
        st.caption(
            "Fix: add `[auth]` with redirect_uri, cookie_secret, client_id, client_secret and server_metadata_url "
            "to .streamlit/secrets.toml (see .streamlit/secrets.example.toml), or switch sign-in off."
        )
        _stop()
    provider = settings.access.provider
    if st.button("Sign in", type="primary", icon=":material/login:", key=keys.SIGN_IN):
        st.login(provider) if provider else st.login()
    st.caption("You will come back here once the sign-in provider knows who you are.")
    _stop()


def _no_role_screen(exc: AccessDenied) -> NoReturn:
    st.title("Rerank Playground")
    st.error(render.md_escape(exc.message), icon=":material/block:")
    if exc.hint:
        st.caption(f"Fix: {render.md_escape(exc.hint)}")
    if st.button("Sign out", icon=":material/logout:", key=keys.SIGN_OUT):
        st.logout()
    _stop()


def gate(settings: Settings) -> Actor:
    """Draw who is using the app in the sidebar and return the actor; without a signed-in user (when
    sign-in is on), draw the sign-in screen and stop the run."""
    if not settings.access.sign_in:
        actor = current(settings)
        if actor.can(Permission.GRADE):
            actor = anonymous_actor(labelling.render_judge_input(), settings.access, settings.demo)
        if settings.demo.enabled:
            with st.sidebar:
                st.caption(
                    f"Demo · as a guest you may {ROLE_WORDS[actor.role]}."
                    + ("" if actor.can(Permission.GRADE) else " Grading needs a signed-in labeller.")
                )
        return actor
    try:
        actor = current(settings)
    except NotSignedIn:
        _sign_in_screen(settings)
    except AccessDenied as exc:
        _no_role_screen(exc)
    with st.sidebar:
        st.markdown(f"Signed in as **{render.md_escape(actor.identity)}**")
        st.caption(f"Role **{actor.role.value}**: {ROLE_WORDS[actor.role]}.")
        st.button("Sign out", icon=":material/logout:", key=keys.SIGN_OUT, on_click=st.logout)
    return actor
