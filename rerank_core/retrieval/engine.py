"""Search engines and vector databases as first stages: the shared work of every engine retriever.

An engine retriever (``opensearch``, ``elasticsearch``, ``qdrant``, ``pgvector``, ``chroma``,
``http``) asks a service the user already runs for the top k of a query. It builds no local index
(``needs_index = False``): :meth:`Retriever.build` only binds the corpus in use, which supplies
a hit's title and text by id when the engine does not return them. Nothing is contacted until the
first query (or :meth:`EngineRetriever.test_connection`), so a page or an evaluation can list the
method without the service being up.

The shared pieces, so each engine is one small class:

* options from ``[methods.<name>]`` in the settings file, every one with a default or marked
  required; an unknown or missing option is a :class:`ConfigError` naming the section;
  ``timeout_s``, ``max_retries`` and ``backoff_base_s`` default to the settings'
  ``request_timeout_s`` and ``max_retries``; ``requests_per_second`` (default: the shared setting,
  else none) limits the calls to the engine across every query in the process;
* secrets (passwords, API keys, a database URL) only from the environment or Streamlit secrets,
  by the names the class declares; every message is redacted of them;
* every call through :func:`rerank_core.http.call_with_retries` (timeouts, bounded retries on
  429/5xx and connection errors honouring ``Retry-After``; an engine that could not be reached is
  not called again for ``reconnect_after_s``, 30 s by default): an engine turns its client's
  exceptions into :class:`TransportFailure` (retried or not by the one policy) or into
  :class:`EngineSettingError` naming the setting to fix (a missing index, collection or table, an
  unknown field, a refused query);
* the query embedder (``model``, a sentence-transformers id or folder, loaded once per process
  and shared with the dense first stage; embeddings normalised unless ``normalize = false``);
* reading a hit's id, title and text from the record the engine returns, by field name (dotted
  paths reach nested fields): a configured field missing from a hit is an error naming the setting
  and listing the hit's fields; a field set to ``""`` means "take it from the corpus by id".
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from rerank_core.config import Settings
from rerank_core.errors import ConfigError, EngineSettingError
from rerank_core.http import (
    Breaker,
    call_with_retries,
    rate_limiter,
    requests_per_second,
    safe_url,
    url_password,
)
from rerank_core.models import MINILM_ID
from rerank_core.progress import ProgressFn
from rerank_core.retrieval.base import Hit, Retriever
from rerank_core.retrieval.persist import read_meta, write_meta
from rerank_core.types import Corpus, ScoreScale

T = TypeVar("T")

#: marks an option without a default
REQUIRED = object()
_MISSING = object()

COMMON_DEFAULTS: dict[str, Any] = {
    "timeout_s": None,
    "max_retries": None,
    "backoff_base_s": 0.5,
    "reconnect_after_s": 30.0,
    "requests_per_second": None,
}


def lookup(record: Any, path: str) -> Any:
    """The value at a dotted ``path`` in nested dicts and lists (``"meta.title"``, ``"hits.0._id"``);
    a key that itself contains dots is tried whole first. Returns ``_MISSING`` when absent."""
    if isinstance(record, Mapping) and path in record:
        return record[path]
    node = record
    for part in path.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def is_missing(value: Any) -> bool:
    return value is _MISSING


def describe_keys(record: Any, limit: int = 12) -> str:
    """The keys of a record, for an error message ("title, text, year")."""
    if isinstance(record, Mapping):
        keys = [str(k) for k in record]
        return ", ".join(keys[:limit]) + (", ..." if len(keys) > limit else "") if keys else "none"
    if isinstance(record, list):
        return f"a list of {len(record)}"
    return type(record).__name__


def as_text(value: Any) -> str:
    """A field's value as text: strings as they are, a list of strings joined by blank lines."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "\n\n".join(value)
    return "" if value is None else str(value)


class QueryEmbedder:
    """A sentence-transformers model that embeds queries (shared per process, used under its lock)."""

    def __init__(self, model: str, settings: Settings, *, normalize: bool = True) -> None:
        self.model_name = model
        self.settings = settings
        self.normalize = normalize
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            from rerank_core.encoders import load_sentence_transformer

            self._model = load_sentence_transformer(self.model_name, self.settings)
        return self._model

    @property
    def dimension(self) -> int | None:
        from rerank_core.encoders import embedding_dimension

        return embedding_dimension(self._load())

    def __call__(self, text: str) -> list[float]:
        import numpy as np

        from rerank_core.encoders import model_lock

        model = self._load()
        with model_lock(model):
            out = model.encode(
                [text], convert_to_numpy=True, normalize_embeddings=self.normalize, show_progress_bar=False
            )
        return [float(x) for x in np.asarray(out, dtype=np.float32).reshape(-1)]


class EngineRetriever(Retriever):
    """A first stage served by an engine the user runs. Subclasses implement :meth:`_connect` (check
    the service and the settings, once) and :meth:`_query` (one search)."""

    needs_index = False
    hosted = True
    offline = False
    scale = ScoreScale.FIRST_STAGE
    reads = ("request_timeout_s", "max_retries", "models_dir", "device")
    #: the engine's name in messages ("OpenSearch")
    engine: ClassVar[str] = ""
    #: every option with its default (``REQUIRED``: no default); common ones are added
    defaults: ClassVar[dict[str, Any]] = {}
    #: the option holding the service's address (named in connection errors)
    url_option: ClassVar[str] = "url"
    #: example values of options, for messages
    examples: ClassVar[dict[str, str]] = {}

    def __init__(self, settings: Settings | None = None, **options: Any) -> None:
        super().__init__(settings=settings, **options)
        known = {**COMMON_DEFAULTS, **self.defaults}
        unknown = sorted(set(self.options) - set(known))
        if unknown:
            raise ConfigError(
                f"{self.section}: unknown option(s) {', '.join(unknown)}.",
                hint=f"{self.name} options are: {', '.join(known)}",
            )
        opts = dict(known)
        opts.update({k: v for k, v in self.options.items() if v is not None})
        self.options = opts
        self.timeout_s = self._number("timeout_s", self.settings.request_timeout_s, minimum=0.001)
        self.max_retries = int(self._number("max_retries", self.settings.max_retries, minimum=0))
        self.backoff_base_s = self._number("backoff_base_s", 0.5, minimum=0)
        self.reconnect_after_s = self._number("reconnect_after_s", 30.0, minimum=0)
        self._breaker = Breaker(self.reconnect_after_s)
        rate = requests_per_second(
            {k: v for k, v in self.options.items() if v is not None},
            self.settings.requests_per_second,
            self.section,
        )
        self.requests_per_second = rate
        self.limiter = rate_limiter(f"{self.name}:{self.address}", rate)
        self._ready = False
        self._ready_lock = threading.Lock()
        self._embedder: QueryEmbedder | None = None

    # -- options -----------------------------------------------------------------------------------
    @classmethod
    def option_defaults(cls) -> dict[str, Any]:
        """Every option the engine takes with its default (None: unset), for a settings form."""
        return {k: (None if v is REQUIRED else v) for k, v in {**COMMON_DEFAULTS, **cls.defaults}.items()}

    @classmethod
    def required_options(cls) -> tuple[str, ...]:
        """The options that have no default (``index``, ``table``, ...)."""
        return tuple(k for k, v in cls.defaults.items() if v is REQUIRED)

    @property
    def section(self) -> str:
        return f"[methods.{self.name}]"

    def setting(self, key: str) -> str:
        return f"{self.section} {key}"

    def option(self, key: str) -> Any:
        """An option's value; a required option that is not set is a :class:`ConfigError`."""
        value = self.options.get(key)
        if value is REQUIRED or value is None or (isinstance(value, str) and not value.strip()):
            example = self.examples.get(key, "...")
            raise ConfigError(
                f"{self.setting(key)} is not set: the {self.engine} first stage needs it.",
                hint=f"set it in the settings file, e.g. {key} = {example}",
            )
        return value

    def _number(self, key: str, default: float, *, minimum: float) -> float:
        value = self.options.get(key)
        if value is None:
            return float(default)
        try:
            out = float(value)
        except (TypeError, ValueError):
            out = float("nan")
        if not out >= minimum:
            raise ConfigError(
                f"{self.setting(key)} = {value!r} is not a number >= {minimum:g}.",
                hint=f"for example {key} = {default!r}",
            )
        return out

    def field_option(self, key: str) -> str | None:
        """A field-name option: None or "" means "not read from the hit"."""
        value = self.options.get(key)
        if value is None or value is REQUIRED:
            return None
        if not isinstance(value, str):
            raise ConfigError(
                f"{self.setting(key)} must be a field name (text), not {value!r}.",
                hint=f'e.g. {key} = "text"',
            )
        return value.strip() or None

    # -- secrets and calls --------------------------------------------------------------------------
    @property
    def address(self) -> str:
        """Where the service is, for labels and messages (no credentials)."""
        value = self.options.get(self.url_option)
        if isinstance(value, (list, tuple)):
            return ", ".join(safe_url(str(v)) for v in value)
        return safe_url(str(value)) if value and value is not REQUIRED else ""

    @property
    def what(self) -> str:
        return f"{self.engine} at {self.address}" if self.address else self.engine

    def secret_values(self) -> tuple[str, ...]:
        values = [self.settings.secret(name) for name in self.secrets]
        raw = self.options.get(self.url_option)
        for url in raw if isinstance(raw, (list, tuple)) else [raw]:
            if isinstance(url, str):
                values.append(url_password(url))
        return tuple(v for v in values if v)

    def key_hint(self) -> str:
        names = " or ".join(self.secrets) if self.secrets else "the credentials"
        return f"check {names} (environment or Streamlit secrets) and the user in {self.section}"

    def hints(self) -> dict[int | str, str]:
        return {
            "connection": f"check {self.setting(self.url_option)} and that {self.engine} is running and reachable",
            "timeout": f"raise {self.setting('timeout_s')} (or request_timeout_s), or check that {self.engine} "
            "is not overloaded",
        }

    def call(self, fn: Callable[[], T], *, hints: Mapping[int | str, str] | None = None) -> T:
        """``fn()`` under the shared retry policy, failures as typed errors naming this engine."""
        return call_with_retries(
            fn,
            max_retries=self.max_retries,
            timeout_s=self.timeout_s,
            backoff_base_s=self.backoff_base_s,
            what=self.what,
            secrets=self.secret_values(),
            key_hint=self.key_hint(),
            hints={**self.hints(), **(hints or {})},
            limiter=self.limiter,
        )

    # -- the query embedder ------------------------------------------------------------------------
    @property
    def embedder(self) -> QueryEmbedder:
        if self._embedder is None:
            model = str(self.options.get("model") or MINILM_ID)
            self._embedder = QueryEmbedder(
                model, self.settings, normalize=bool(self.options.get("normalize", True))
            )
        return self._embedder

    # -- hits --------------------------------------------------------------------------------------
    def read_field(self, record: Any, key: str | None, option: str, doc_id: str, *, what: str) -> str | None:
        """The value of field ``key`` in a hit's ``record`` as text (None when ``key`` is not set).
        A configured field missing from the hit is an :class:`EngineSettingError` naming ``option``."""
        if key is None:
            return None
        value = lookup(record, key)
        if is_missing(value):
            raise EngineSettingError(
                f"{self.engine} hit {doc_id!r} has no field {key!r} (its fields: {describe_keys(record)}).",
                setting=self.setting(option),
                hint=f'set {self.setting(option)} to the field that holds the {what}, or to "" to take the '
                f"{what} from the loaded corpus by id",
            )
        return as_text(value)

    def read_id(self, record: Any, native: Any, option: str = "id_field") -> str:
        key = self.field_option(option)
        if key is None:
            return str(native)
        value = lookup(record, key)
        if is_missing(value) or value is None:
            raise EngineSettingError(
                f"{self.engine} hit {native!r} has no id field {key!r} (its fields: {describe_keys(record)}).",
                setting=self.setting(option),
                hint=f"set {self.setting(option)} to the field holding the document id, or remove it to use "
                f"the {self.engine} id",
            )
        return str(value)

    def make_hit(self, doc_id: str, score: float, record: Any) -> Hit:
        return Hit(
            doc_id=doc_id,
            score=float(score),
            title=self.read_field(
                record, self.field_option("title_field"), "title_field", doc_id, what="title"
            ),
            text=self.read_field(record, self.field_option("text_field"), "text_field", doc_id, what="text"),
        )

    def wanted_fields(self) -> list[str]:
        """The record fields a hit is read from (for source filtering)."""
        return [f for f in (self.field_option(k) for k in ("id_field", "title_field", "text_field")) if f]

    # -- the Retriever interface -------------------------------------------------------------------
    @property
    def label(self) -> str:
        return f"{self.engine} · {self.target}" + (f" via {self.address}" if self.address else "")

    @property
    def target(self) -> str:
        """What is searched ("index docs", "table docs"), for the label."""
        return ""

    def _build(self, corpus: Corpus, progress: ProgressFn | None) -> None:
        """Nothing to build: the engine serves the index. The corpus supplies text by id."""

    def _ensure_ready(self) -> None:
        with self._ready_lock:
            if not self._ready:
                self._connect()
                self._ready = True

    @abstractmethod
    def _connect(self) -> None:
        """Create the client and check the settings against the service (once, at first use)."""

    @abstractmethod
    def _query(self, query: str, k: int) -> list[Hit]:
        """One search: the top ``k`` hits, best first."""

    def _search(self, query: str, k: int) -> list[Hit]:
        def search() -> list[Hit]:
            self._ensure_ready()
            return self._query(query, k)

        # an engine that could not be reached is not tried again for reconnect_after_s
        return self._breaker.call(search)

    def test_connection(self, query: str = "test") -> Hit | None:
        """Connect, check the settings and run ``query`` for one hit: the hit (id, score, title and
        text as the candidates will carry them), or None when the engine found nothing for it.
        Raises the same typed errors a search would, naming the setting to fix. It always tries
        (an earlier failure to connect is forgotten)."""
        self._breaker.record(None)
        hits = self.hits(query, 1)
        if not hits:
            return None
        hit = hits[0]
        if hit.text is None and (self.corpus is None or hit.doc_id not in self.corpus):
            from rerank_core.retrieval.base import MissingHitText

            raise MissingHitText(
                f"{self.engine} returned document {hit.doc_id!r} without its text, and the corpus in use has "
                "no document with that id.",
                hint=f"set {self.setting('text_field')} to the field holding the text, or load the corpus the "
                "engine serves",
            )
        return hit

    def close(self) -> None:
        """Release the client (connections); the next query connects again."""
        with self._ready_lock:
            self._ready = False

    # -- persistence: nothing to save but the options ------------------------------------------------
    def save(self, directory: str | Path) -> None:
        if self.corpus is None:
            raise ConfigError(f"{self.name}: nothing to save yet.", hint="build() it on a corpus first")
        options = {k: v for k, v in self.options.items() if v is not REQUIRED}
        write_meta(directory, retriever=self.name, corpus=self.corpus, options=options, model=None)

    @classmethod
    def load(cls, directory: str | Path, corpus: Corpus, settings: Settings | None = None) -> EngineRetriever:
        meta = read_meta(directory, retriever=cls.name, corpus=corpus)
        retriever = cls(settings=settings, **meta.get("options", {}))
        retriever.build(corpus)
        return retriever


def render_template(template: Any, values: Mapping[str, Any], *, setting: str) -> Any:
    """A JSON request template with ``{{name}}`` placeholders filled in.

    ``template`` is a TOML table (dict) or JSON text. A string that is exactly ``"{{name}}"``
    becomes the value itself (a number, a list for ``{{vector}}``); a placeholder inside a longer
    string is replaced by the value's text. Unquoted ``{{k}}`` or ``{{vector}}`` in JSON text is
    allowed. Raises :class:`ConfigError` naming ``setting`` for unreadable JSON or an unknown
    placeholder."""
    import json
    import re

    if isinstance(template, str):
        text = re.sub(r'(?<!")\{\{\s*(\w+)\s*\}\}(?!")', r'"{{\1}}"', template)
        try:
            template = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{setting} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
                hint='write it as JSON with "{{query}}" where the query text goes, or as a TOML table',
            ) from None
    pattern = re.compile(r"\{\{\s*(\w+)\s*\}\}")

    def fill(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: fill(v) for k, v in node.items()}
        if isinstance(node, list):
            return [fill(v) for v in node]
        if isinstance(node, str):
            whole = pattern.fullmatch(node.strip())
            if whole:
                return value_of(whole.group(1))
            return pattern.sub(lambda m: str(value_of(m.group(1))), node)
        return node

    def value_of(name: str) -> Any:
        if name not in values:
            raise ConfigError(
                f"{setting} uses {{{{{name}}}}}, which is not a known placeholder.",
                hint=f"placeholders are: {', '.join('{{' + v + '}}' for v in values)}",
            )
        return values[name]

    return fill(template)


def render_text(text: str, values: Mapping[str, Any], *, setting: str) -> str:
    """``text`` (a URL, a plain string) with each ``{{name}}`` replaced by its value's text."""
    import re

    def value_of(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise ConfigError(
                f"{setting} uses {{{{{name}}}}}, which is not a known placeholder here.",
                hint=f"placeholders are: {', '.join('{{' + v + '}}' for v in values)}",
            )
        return str(values[name])

    return re.sub(r"\{\{\s*(\w+)\s*\}\}", value_of, text)


def uses_placeholder(template: Any, name: str) -> bool:
    """Whether a template (table or text) mentions ``{{name}}``."""
    import json
    import re

    text = template if isinstance(template, str) else json.dumps(template)
    return re.search(r"\{\{\s*" + re.escape(name) + r"\s*\}\}", text) is not None


def check_url(url: str, *, setting: str, example: str) -> str:
    """``url`` if it is an http(s) URL with a host, else a :class:`ConfigError` naming ``setting``."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(str(url).strip())
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(
            f"{setting} = {safe_url(str(url)) or str(url)!r} is not an http(s) URL with a host (and a numeric port).",
            hint=f'write it as "{example}"',
        )
    return str(url).strip()


def str_list(value: Any, *, setting: str) -> list[str]:
    """An option that is one name or a list of names."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Iterable) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(
        f"{setting} must be a name or a list of names, not {value!r}.", hint='e.g. ["title", "text"]'
    )
