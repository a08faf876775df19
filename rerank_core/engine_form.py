"""An engine's settings as a form: the fields, reading what was typed, testing the connection, and the
TOML snippet for ``rerank.toml``.

The fields come from the engine class itself (:meth:`EngineRetriever.option_defaults`,
:meth:`EngineRetriever.required_options`, ``examples`` and ``secrets``), so a new engine gets its form
for free. What the user types is read as a TOML value when it is one (``100``, ``true``,
``["title", "text"]``, ``{ match = ... }``, ``"2024"``) and as text otherwise (a URL, a field name, a
JSON query template); an empty field means "the default". Secrets are never form fields here: the app
asks for them in password fields of the session (their names are :func:`secret_names`), and they never
appear in the snippet.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rerank_core.config import Settings
from rerank_core.errors import ConfigError, EngineSettingError, RerankError
from rerank_core.retrieval.base import Hit
from rerank_core.types import Corpus

#: options every engine takes (timeouts, retries): shown apart, under "advanced"
ADVANCED = ("timeout_s", "max_retries", "backoff_base_s", "reconnect_after_s", "requests_per_second")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class EngineField:
    """One option of an engine's form: its default (None: unset), whether it is required, an example."""

    name: str
    default: Any
    required: bool
    example: str = ""
    advanced: bool = False

    @property
    def is_bool(self) -> bool:
        return isinstance(self.default, bool)


def engine_names() -> list[str]:
    """The first stages that are engines a user runs (they have a settings form)."""
    from rerank_core.registry import RETRIEVERS, retriever_class
    from rerank_core.retrieval.engine import EngineRetriever

    out = []
    for name in RETRIEVERS:
        try:
            cls = retriever_class(name)
        except ImportError:
            continue
        if isinstance(cls, type) and issubclass(cls, EngineRetriever):
            out.append(name)
    return out


def _engine_class(name: str) -> Any:
    from rerank_core.registry import retriever_class
    from rerank_core.retrieval.engine import EngineRetriever

    cls = retriever_class(name)
    if not (isinstance(cls, type) and issubclass(cls, EngineRetriever)):
        raise ConfigError(
            f"{name!r} is not a search engine first stage.", hint=f"engines: {', '.join(engine_names())}"
        )
    return cls


def engine_fields(name: str) -> list[EngineField]:
    """The form of engine ``name``: required options first, then the rest, the common ones last."""
    cls = _engine_class(name)
    required = set(cls.required_options())
    fields = [
        EngineField(
            name=key,
            default=default,
            required=key in required,
            example=str(cls.examples.get(key, "")),
            advanced=key in ADVANCED,
        )
        for key, default in cls.option_defaults().items()
    ]
    return sorted(fields, key=lambda f: (f.advanced, not f.required, 0))


def secret_names(name: str) -> tuple[str, ...]:
    """The secrets engine ``name`` reads (asked for in the session's password fields)."""
    return tuple(_engine_class(name).secrets)


def parse_value(text: str) -> Any:
    """What a typed field means: a TOML value when it is one, else the text itself; "" is None."""
    text = text.strip()
    if not text:
        return None
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except (tomllib.TOMLDecodeError, ValueError):
        return text


def show_value(value: Any) -> str:
    """A value as it is shown in a field (the inverse of :func:`parse_value`)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value if parse_value(value) == value else _toml(value)
    return _toml(value)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    raise ConfigError(f"{value!r} cannot be written as TOML.", hint="use text, numbers, lists or tables")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _toml(key)


def options_from_form(name: str, typed: Mapping[str, Any]) -> dict[str, Any]:
    """The options typed into engine ``name``'s form (text read by :func:`parse_value`; booleans as
    given); empty fields and values equal to the default are left out. Unknown names are an error."""
    fields = {f.name: f for f in engine_fields(name)}
    unknown = sorted(set(typed) - set(fields))
    if unknown:
        raise ConfigError(
            f"[methods.{name}]: unknown option(s) {', '.join(unknown)}.", hint=f"options: {', '.join(fields)}"
        )
    out: dict[str, Any] = {}
    for key, raw in typed.items():
        value = raw if isinstance(raw, bool) or raw is None else parse_value(str(raw))
        if value is None or value == fields[key].default:
            continue
        out[key] = value
    return out


def toml_snippet(name: str, options: Mapping[str, Any]) -> str:
    """``[methods.<name>]`` with the options, for ``rerank.toml`` (secrets are never options)."""
    lines = [f"[methods.{name}]"]
    lines += [f"{_key(k)} = {_toml(v)}" for k, v in options.items() if v is not None]
    secrets = secret_names(name)
    if secrets:
        lines.append(f"# secrets: {', '.join(secrets)} in the environment or Streamlit secrets, never here")
    return "\n".join(lines) + "\n"


def with_engine(settings: Settings, name: str, options: Mapping[str, Any]) -> Settings:
    """``settings`` with ``[methods.<name>]`` replaced by ``options``."""
    from dataclasses import replace

    return replace(settings, methods={**settings.methods, name: dict(options)})


@dataclass(frozen=True)
class ConnectionCheck:
    """The outcome of a test: the hit (None: connected, nothing found) or the error, with the setting to
    fix when the error names one."""

    ok: bool
    hit: Hit | None = None
    message: str = ""
    hint: str | None = None
    setting: str | None = None
    label: str = ""


def check_connection(
    name: str, settings: Settings, corpus: Corpus | None, query: str = "test"
) -> ConnectionCheck:
    """Connect engine ``name`` under ``settings`` (its ``[methods.<name>]``), check its settings and
    run ``query`` for one hit. Never raises for a setting or a service problem: the check says what
    to fix, naming the setting when it can."""
    from rerank_core.registry import create_retriever

    try:
        retriever = create_retriever(name, settings)
        if corpus is not None:
            retriever.build(corpus)
        hit = retriever.test_connection(query or "test")  # type: ignore[attr-defined]
        return ConnectionCheck(ok=True, hit=hit, label=retriever.label)
    except EngineSettingError as exc:
        return ConnectionCheck(ok=False, message=exc.message, hint=exc.hint, setting=exc.setting)
    except RerankError as exc:
        match = re.search(r"\[methods\.[\w-]+\] [\w.]+", exc.message + " " + (exc.hint or ""))
        return ConnectionCheck(
            ok=False, message=exc.message, hint=exc.hint, setting=match.group(0) if match else None
        )
    except ImportError as exc:
        return ConnectionCheck(
            ok=False,
            message=f"the {name} client is not installed ({exc}).",
            hint="pip install -r requirements.txt",
        )


__all__ = [
    "ADVANCED",
    "ConnectionCheck",
    "EngineField",
    "engine_fields",
    "engine_names",
    "options_from_form",
    "parse_value",
    "secret_names",
    "check_connection",
    "show_value",
    "toml_snippet",
    "with_engine",
]
