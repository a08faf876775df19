"""Configuration: one documented TOML file plus environment variables.

Lookup order for each setting: environment variable, then the config file, then the default.
The config file is ``$RERANK_CONFIG`` if set, else ``rerank.toml`` in the working directory
(optional; see ``rerank.example.toml`` for every key). API keys are read from the environment
(or handed in by the app from Streamlit secrets) and are never written anywhere.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from rerank_core.errors import ConfigError

# setting name -> environment variable
_ENV = {
    "models_dir": "RERANK_MODELS_DIR",
    "data_dir": "RERANK_DATA_DIR",
    "flashrank_cache_dir": "RERANK_FLASHRANK_CACHE",
    "db_url": "RERANK_DB_URL",
    "openai_model": "RERANK_OPENAI_MODEL",
    "openai_base_url": "OPENAI_BASE_URL",
    "cohere_model": "RERANK_COHERE_MODEL",
    "cohere_base_url": "RERANK_COHERE_BASE_URL",
    "request_timeout_s": "RERANK_REQUEST_TIMEOUT",
    "max_retries": "RERANK_MAX_RETRIES",
    "device": "RERANK_DEVICE",
}

_SECRET_ENV = {"openai_api_key": "OPENAI_API_KEY", "cohere_api_key": "COHERE_API_KEY"}


@dataclass(frozen=True)
class Settings:
    models_dir: Path | None = None
    data_dir: Path = Path(".rerank-data")
    flashrank_cache_dir: Path | None = None  # default: <data_dir>/flashrank
    db_url: str | None = None  # default: sqlite:///<data_dir>/judgements.sqlite
    openai_model: str = "gpt-4o-mini"
    openai_base_url: str | None = None
    cohere_model: str = "rerank-v3.5"
    cohere_base_url: str | None = None
    request_timeout_s: float = 30.0
    max_retries: int = 3
    device: str = "cpu"
    # per-method options, e.g. {"cross-encoder": {"batch_size": 32, "max_length": 512}}
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    # secrets: held in memory only, never serialised (repr hides them)
    openai_api_key: str | None = field(default=None, repr=False)
    cohere_api_key: str | None = field(default=None, repr=False)

    @property
    def resolved_flashrank_cache_dir(self) -> Path:
        return self.flashrank_cache_dir or (self.data_dir / "flashrank")

    @property
    def resolved_db_url(self) -> str:
        return self.db_url or f"sqlite:///{(self.data_dir / 'judgements.sqlite').resolve()}"

    def method_options(self, name: str) -> dict[str, Any]:
        return dict(self.methods.get(name, {}))

    def with_secrets(self, **secrets: str | None) -> Settings:
        """A copy with API keys set (for keys from Streamlit secrets or a password field)."""
        clean: dict[str, Any] = {k: v for k, v in secrets.items() if v}
        unknown = set(clean) - set(_SECRET_ENV)
        if unknown:
            raise ConfigError(f"unknown secret(s): {sorted(unknown)}")
        return replace(self, **clean)


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
        raise ConfigError(f"config file {cfg_path} does not exist", hint="fix RERANK_CONFIG or the path given")

    known = {f.name for f in fields(Settings)} - set(_SECRET_ENV)
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
        if name in _ENV and env.get(_ENV[name]):
            values[name] = _coerce(name, env[_ENV[name]])
        elif name in data:
            values[name] = _coerce(name, data[name])
    for name, var in _SECRET_ENV.items():
        if env.get(var):
            values[name] = env[var]
    return Settings(**values)
