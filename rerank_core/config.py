"""Configuration: one documented TOML file plus environment variables.

Lookup order for each setting: environment variable, then the config file, then the default.
The config file is ``$RERANK_CONFIG`` if set, else ``rerank.toml`` in the working directory
(optional; see ``rerank.example.toml`` for every key).

A hosted deployment adds three tables: ``[access]`` (sign-in and roles, see
:class:`rerank_core.access.AccessSettings`), ``[demo]`` (:class:`rerank_core.access.DemoSettings`) and
``[limits]`` (:class:`rerank_core.serving.LimitSettings`); each is checked when read, so a misspelt key
is an error that names the keys it takes.

Secrets (API keys, passwords) are never read from the file. Each backend declares the secrets it
reads by their environment-variable names (``OPENAI_API_KEY``); :func:`load_settings` takes every
declared secret from the environment, and the app adds Streamlit secrets and its password fields
with :meth:`Settings.with_secrets`. They live in memory only (``repr`` hides them) and are never
written anywhere. A backend only ever sees the secrets it declares (see
:func:`rerank_core.registry.scoped_settings`).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from rerank_core.access import AccessSettings, DemoSettings
from rerank_core.errors import ConfigError
from rerank_core.serving import LimitSettings

# setting name -> environment variable
_ENV = {
    "models_dir": "RERANK_MODELS_DIR",
    "data_dir": "RERANK_DATA_DIR",
    "cache_dir": "RERANK_CACHE_DIR",
    "flashrank_cache_dir": "RERANK_FLASHRANK_CACHE",
    "db_url": "RERANK_DB_URL",
    "openai_model": "RERANK_OPENAI_MODEL",
    "openai_base_url": "OPENAI_BASE_URL",
    "cohere_model": "RERANK_COHERE_MODEL",
    "cohere_base_url": "RERANK_COHERE_BASE_URL",
    "request_timeout_s": "RERANK_REQUEST_TIMEOUT",
    "max_retries": "RERANK_MAX_RETRIES",
    "device": "RERANK_DEVICE",
    "requests_per_second": "RERANK_REQUESTS_PER_SECOND",
}

_SECRET_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


def check_secret_name(name: str) -> str:
    """A secret is named like its environment variable: ``OPENAI_API_KEY``."""
    if not isinstance(name, str) or not _SECRET_NAME.match(name):
        raise ConfigError(
            f"{name!r} is not a secret name",
            hint="secrets are named like environment variables: OPENAI_API_KEY",
        )
    return name


@dataclass(frozen=True)
class Settings:
    models_dir: Path | None = None
    # the environment's data directory when there is one, so a Settings() made in code (a script, a
    # test) and load_settings() agree on where indexes and caches live
    data_dir: Path = field(default_factory=lambda: Path(os.environ.get("RERANK_DATA_DIR") or ".rerank-data"))
    cache_dir: Path | None = None  # encodings per text, shared by every corpus; default: <data_dir>/cache
    flashrank_cache_dir: Path | None = None  # default: <data_dir>/flashrank
    db_url: str | None = None  # default: sqlite:///<data_dir>/judgements.sqlite
    openai_model: str = "gpt-4o-mini"
    openai_base_url: str | None = None
    cohere_model: str = "rerank-v3.5"
    cohere_base_url: str | None = None
    request_timeout_s: float = 30.0
    max_retries: int = 3
    # a rate limit per hosted endpoint (rerank servers, APIs, engines) unless [methods.<name>] sets its own
    requests_per_second: float | None = None
    device: str = "cpu"
    # per-method options, e.g. {"cross-encoder": {"batch_size": 32, "max_length": 512}}
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    # prices per method, e.g. {"cohere": {"per_search_unit": 0.002}} (see rerank_core.cost)
    prices: dict[str, dict[str, float]] = field(default_factory=dict)
    # secrets by environment-variable name: held in memory only, never serialised (repr hides them)
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    # a hosted deployment: sign-in and roles ([access]), demo mode ([demo]), sharing the process ([limits])
    access: AccessSettings = field(default_factory=AccessSettings)
    demo: DemoSettings = field(default_factory=DemoSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)

    def __post_init__(self) -> None:
        clean = {check_secret_name(k): str(v) for k, v in dict(self.secrets).items() if v}
        object.__setattr__(self, "secrets", clean)

    def secret(self, name: str) -> str | None:
        """The value of the secret ``name`` (e.g. ``"COHERE_API_KEY"``), None when not set."""
        return self.secrets.get(name) or None

    @property
    def openai_api_key(self) -> str | None:
        return self.secret("OPENAI_API_KEY")

    @property
    def cohere_api_key(self) -> str | None:
        return self.secret("COHERE_API_KEY")

    @property
    def resolved_cache_dir(self) -> Path:
        """Where sentence and token embeddings per text are kept (content-addressed, safe to share)."""
        return self.cache_dir or (self.data_dir / "cache")

    @property
    def resolved_flashrank_cache_dir(self) -> Path:
        return self.flashrank_cache_dir or (self.data_dir / "flashrank")

    @property
    def resolved_db_url(self) -> str:
        return self.db_url or f"sqlite:///{(self.data_dir / 'judgements.sqlite').resolve()}"

    def method_options(self, name: str) -> dict[str, Any]:
        return dict(self.methods.get(name, {}))

    def with_method_options(self, overrides: Mapping[str, Mapping[str, Any]]) -> Settings:
        """A copy whose ``[methods.<name>]`` options are updated by ``overrides`` (choices made in the app
        for one session, e.g. ``{"cross-encoder": {"precision": "onnx-int8"}}``); the same settings when
        there is nothing to override."""
        if not any(overrides.values()):
            return self
        merged = dict(self.methods)
        for name, opts in overrides.items():
            if opts:
                merged[name] = {**self.method_options(name), **opts}
        return replace(self, methods=merged)

    def with_secrets(self, secrets: Mapping[str, str | None] | None = None, **more: str | None) -> Settings:
        """A copy with secrets set or replaced (keys from Streamlit secrets or a password field).

        Names are environment-variable names (``COHERE_API_KEY``); an empty value leaves the secret
        as it was."""
        merged = dict(self.secrets)
        for name, value in {**dict(secrets or {}), **more}.items():
            check_secret_name(name)
            if value:
                merged[name] = str(value)
        return replace(self, secrets=merged)

    def only_secrets(self, names: Iterable[str]) -> Settings:
        """A copy that holds only the named secrets (what a backend that declares them may see)."""
        wanted = set(names)
        return replace(self, secrets={k: v for k, v in self.secrets.items() if k in wanted})


def _coerce(name: str, value: Any) -> Any:
    kinds = {f.name: f.type for f in fields(Settings)}
    kind = str(kinds[name])
    try:
        if name.endswith("_dir") and value is not None:
            return Path(os.path.expanduser(str(value)))
        if "float" in kind:
            return float(value)
        if kind.startswith("int"):
            return int(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"setting {name!r} has an invalid value {value!r}: {exc}",
            hint=f"set {name} to a valid {kind} in rerank.toml or {_ENV.get(name, 'the env')}",
        ) from exc
    return value


def load_settings(path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None) -> Settings:
    """Build settings from the config file and the environment."""
    env = dict(os.environ if env is None else env)
    cfg_path = Path(path or env.get("RERANK_CONFIG") or "rerank.toml")
    data: dict[str, Any] = {}
    if cfg_path.exists():
        try:
            data = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot parse config file {cfg_path}: {exc}") from exc
    elif path is not None or env.get("RERANK_CONFIG"):
        raise ConfigError(
            f"config file {cfg_path} does not exist", hint="fix RERANK_CONFIG or the path given"
        )

    sections: dict[str, Any] = {"access": AccessSettings, "demo": DemoSettings, "limits": LimitSettings}
    known = {f.name for f in fields(Settings)} - {"secrets"}
    for key in data:
        if key not in known:
            raise ConfigError(
                f"unknown setting {key!r} in {cfg_path}",
                hint=f"known settings: {', '.join(sorted(known))} (API keys belong in the environment)",
            )
    values: dict[str, Any] = {}
    for name in known:
        if name == "methods":
            values[name] = data.get("methods", {})
            continue
        if name == "prices":
            from rerank_core.cost import check_prices

            values[name] = check_prices(data.get("prices", {}), where=str(cfg_path))
            continue
        if name in sections:
            values[name] = sections[name].from_table(data.get(name, {}), env)
            continue
        if name in _ENV and env.get(_ENV[name]):
            values[name] = _coerce(name, env[_ENV[name]])
        elif name in data:
            values[name] = _coerce(name, data[name])
    from rerank_core.registry import secret_names  # the backends declare what they read

    values["secrets"] = {name: env[name] for name in secret_names() if env.get(name)}
    return Settings(**values)
