"""Any JSON search endpoint as a first stage (``http``): your own search service, a gateway, an
engine without a client here (Vespa, Weaviate, Typesense, Solr's JSON API, ...).

Settings (``[methods.http]``)::

    url = "https://search.internal/api/search?q={{query}}&limit={{k}}"   # placeholders URL-encoded
    method = "GET"                           # default: POST when there is a body, else GET
    body = '{"query": "{{query}}", "size": {{k}}}'   # optional JSON template (or a TOML table);
                                             # {{vector}} sends the query embedding of `model`
    params = { lang = "en" }                 # optional query parameters (placeholders allowed)
    headers = { "X-Team" = "search" }        # optional headers (never secrets: see below)
    hits_path = "data.results"               # where the list of hits is ("" = the answer itself)
    id_path = "id"                           # in each hit, dotted paths; list indexes as numbers
    score_path = "score"                     # "" = scores from the order (n, n-1, ...)
    title_path = "title"                     # optional
    text_path = "text"                       # "" = text from the loaded corpus by id
    api_key_header = "Authorization"         # RERANK_HTTP_API_KEY goes here ("Bearer <key>"),
                                             # or in any other header as the bare key
    model = "sentence-transformers/all-MiniLM-L6-v2"   # only for {{vector}}

Every call goes through the shared HTTP layer (timeouts, retries on 429/5xx honouring
``Retry-After``, redaction). A path that is not in the answer is an :class:`EngineSettingError`
naming the setting and listing what the answer has there.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from rerank_core.config import Settings
from rerank_core.errors import ConfigError, EngineSettingError
from rerank_core.http import JsonClient
from rerank_core.models import MINILM_ID
from rerank_core.retrieval.base import Hit
from rerank_core.retrieval.engine import (
    REQUIRED,
    EngineRetriever,
    describe_keys,
    is_missing,
    lookup,
    render_template,
    render_text,
    uses_placeholder,
)


class HTTPSearchRetriever(EngineRetriever):
    name = "http"
    title = "HTTP search API"
    description = "first stage from any JSON search endpoint: a URL or body template and paths to the hits"
    engine = "the search API"
    secrets = ("RERANK_HTTP_API_KEY",)
    defaults = {
        "url": REQUIRED,
        "method": None,
        "body": None,
        "params": None,
        "headers": None,
        "hits_path": "",
        "id_path": "id",
        "score_path": "score",
        "title_path": None,
        "text_path": "text",
        "api_key_header": "Authorization",
        "model": MINILM_ID,
        "normalize": True,
    }
    examples = {"url": '"https://search.internal/api/search?q={{query}}&limit={{k}}"'}

    def __init__(self, settings: Settings | None = None, **options: Any) -> None:
        super().__init__(settings, **options)
        for key in ("params", "headers"):
            value = self.options.get(key)
            if value is not None and not isinstance(value, dict):
                raise ConfigError(
                    f"{self.setting(key)} must be a table, not {type(value).__name__}.",
                    hint=f'e.g. {key} = {{ name = "value" }}',
                )
        body = self.options.get("body")
        if body is not None and not isinstance(body, (str, dict, list)):
            raise ConfigError(
                f"{self.setting('body')} must be JSON text or a table.",
                hint='e.g. body = \'{"q": "{{query}}"}\'',
            )
        method = str(self.options.get("method") or ("POST" if body is not None else "GET")).upper()
        if method not in ("GET", "POST", "PUT"):
            raise ConfigError(
                f"{self.setting('method')} = {method!r} is not GET or POST.", hint='method = "POST"'
            )
        self.method = method
        self._client: JsonClient | None = None

    @property
    def target(self) -> str:
        return f"{self.method} {self.address}"

    @property
    def label(self) -> str:
        return f"HTTP search API · {self.target}"

    def _template_text(self) -> str:
        return json.dumps([self.options.get(k) for k in ("url", "body", "params")], default=str)

    # -- connection -------------------------------------------------------------------------------
    def _connect(self) -> None:
        url = str(self.option("url"))
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"{self.setting('url')} = {self.address or url!r} is not an http(s) URL with a host.",
                hint=f"write it as {self.examples['url']}",
            )
        key = self.settings.secret("RERANK_HTTP_API_KEY")
        headers = {str(k): str(v) for k, v in (self.options.get("headers") or {}).items()}
        if key:
            name = str(self.options.get("api_key_header") or "Authorization")
            headers[name] = f"Bearer {key}" if name.lower() == "authorization" else key
        root = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        self._client = JsonClient(
            root,
            what="the search API",
            timeout_s=self.timeout_s,
            max_retries=self.max_retries,
            backoff_base_s=self.backoff_base_s,
            headers=headers,
            secrets=self.secret_values(),
            key_hint=self.key_hint(),
            reconnect_after_s=0,  # the engine's own breaker covers it
            requests_per_second=self.requests_per_second,
            hints={
                **self.hints(),
                404: f"check {self.setting('url')}: the server has no such endpoint",
                400: f"the API refused the request: check {self.setting('body')} / params / url",
                "not-json": f"check {self.setting('url')} points at a JSON search endpoint",
            },
        )

    # -- searching ----------------------------------------------------------------------------------
    def _query(self, query: str, k: int) -> list[Hit]:
        assert self._client is not None
        values: dict[str, Any] = {"query": query, "k": k}
        if uses_placeholder(self._template_text(), "vector"):
            values["vector"] = self.embedder(query)
        url = render_text(
            str(self.option("url")),
            {n: quote(str(v), safe="") for n, v in values.items() if n != "vector"},
            setting=self.setting("url"),
        )
        body = self.options.get("body")
        json_body = render_template(body, values, setting=self.setting("body")) if body is not None else None
        params = self.options.get("params")
        if params:
            # added to the URL's own query (httpx would replace it with params=)
            rendered = render_template(params, values, setting=self.setting("params"))
            url += ("&" if urlsplit(url).query else "?") + urlencode(rendered, doseq=True)
        response = self._client.request(self.method, url, json_body=json_body)
        return self.read_hits(response.data)

    def read_hits(self, data: Any) -> list[Hit]:
        path = str(self.options.get("hits_path") or "")
        hits = lookup(data, path) if path else data
        if is_missing(hits) or not isinstance(hits, list):
            found = "nothing" if is_missing(hits) else type(hits).__name__
            raise EngineSettingError(
                f"the search API's answer has {found} at hits_path {path!r}, not a list of hits "
                f"(the answer's keys: {describe_keys(data)}).",
                setting=self.setting("hits_path"),
                hint=f"set {self.setting('hits_path')} to the dotted path of the list of hits",
            )
        score_path = self.field_option("score_path")
        out = []
        for rank, hit in enumerate(hits):
            doc_id = lookup(hit, str(self.option("id_path")))
            if is_missing(doc_id) or doc_id is None:
                raise EngineSettingError(
                    f"hit {rank + 1} of the search API's answer has nothing at id_path "
                    f"{self.options.get('id_path')!r} (its keys: {describe_keys(hit)}).",
                    setting=self.setting("id_path"),
                    hint=f"set {self.setting('id_path')} to the dotted path of the document id in a hit",
                )
            if score_path is None:
                score = float(len(hits) - rank)
            else:
                value = lookup(hit, score_path)
                if is_missing(value) or not isinstance(value, (int, float)) or isinstance(value, bool):
                    raise EngineSettingError(
                        f"hit {doc_id!r} has no number at score_path {score_path!r} (its keys: {describe_keys(hit)}).",
                        setting=self.setting("score_path"),
                        hint=f'set {self.setting("score_path")} to the score\'s path, or to "" to score by order',
                    )
                score = float(value)
            doc = str(doc_id)
            out.append(
                Hit(
                    doc_id=doc,
                    score=score,
                    title=self.read_field(
                        hit, self.field_option("title_path"), "title_path", doc, what="title"
                    ),
                    text=self.read_field(hit, self.field_option("text_path"), "text_path", doc, what="text"),
                )
            )
        return out

    def close(self) -> None:
        super().close()
        if self._client is not None:
            self._client.close()
            self._client = None
