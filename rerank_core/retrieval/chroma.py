"""Chroma as a first stage: nearest neighbours of the query embedding in a Chroma collection.

This speaks Chroma's HTTP API (v2) through the shared HTTP layer rather than the ``chromadb``
client: that client (1.5.9) builds its HTTP session with no timeout at all, hides HTTP statuses
and ``Retry-After`` behind its own exception names, and calls the server while it is being
constructed, so it could not honour the timeout, retry and error rules every hosted method here
follows. The calls are two: read the collection (``GET .../collections/{name}``), then
``POST .../collections/{id}/query`` with the query embedding. The tests run them against a real
``chroma run`` server.

Settings (``[methods.chroma]``)::

    url = "http://localhost:8000"            # the Chroma server (key: CHROMA_API_KEY)
    collection = "docs"
    tenant = "default_tenant"
    database = "default_database"
    model = "sentence-transformers/all-MiniLM-L6-v2"   # the query embedder: the collection's model
    text_field = "document"                  # Chroma's stored document, or a metadata key; "" = corpus
    title_field = "title"                    # optional metadata key
    id_field = "doc_id"                      # optional metadata key instead of the Chroma id
    token_header = "x-chroma-token"          # or "authorization" (sent as Bearer)

Scores from Chroma's distances by the collection's space: cosine and ip give ``1 - distance``
(the cosine similarity, the inner product), l2 gives ``-distance`` (the squared L2 distance,
negated so higher is better).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from rerank_core.config import Settings
from rerank_core.errors import ConfigError, EngineSettingError, HostedCallError
from rerank_core.http import JsonClient, endpoint_url
from rerank_core.models import MINILM_ID
from rerank_core.retrieval.base import Hit
from rerank_core.retrieval.engine import REQUIRED, EngineRetriever, describe_keys
from rerank_core.types import ScoreScale

API = "/api/v2"


class ChromaRetriever(EngineRetriever):
    name = "chroma"
    title = "Chroma"
    description = "first stage from a Chroma collection: nearest neighbours of the query embedding"
    engine = "Chroma"
    secrets = ("CHROMA_API_KEY",)
    default_model = MINILM_ID
    defaults = {
        "url": "http://localhost:8000",
        "collection": REQUIRED,
        "tenant": "default_tenant",
        "database": "default_database",
        "model": MINILM_ID,
        "normalize": True,
        "id_field": None,
        "title_field": None,
        "text_field": "document",
        "token_header": "x-chroma-token",
    }
    examples = {"collection": '"docs"', "url": '"http://localhost:8000"'}

    def __init__(self, settings: Settings | None = None, **options: Any) -> None:
        super().__init__(settings, **options)
        header = str(self.options.get("token_header") or "x-chroma-token").lower()
        if header not in ("x-chroma-token", "authorization"):
            raise ConfigError(
                f"{self.setting('token_header')} = {header!r} is not a header Chroma reads a token from.",
                hint='use "x-chroma-token" or "authorization"',
            )
        self.token_header = header
        self._client: JsonClient | None = None
        self._collection_id: str | None = None
        self._space = "l2"

    @property
    def collection(self) -> str:
        return str(self.option("collection"))

    @property
    def target(self) -> str:
        return f"collection {self.options.get('collection')}"

    def _path(self, *parts: str) -> str:
        tenant = quote(str(self.options.get("tenant") or "default_tenant"), safe="")
        database = quote(str(self.options.get("database") or "default_database"), safe="")
        tail = "/".join(quote(p, safe="") for p in parts)
        return f"/tenants/{tenant}/databases/{database}/collections" + (f"/{tail}" if tail else "")

    # -- connection and checks ----------------------------------------------------------------------
    def _connect(self) -> None:
        url = endpoint_url(
            str(self.option("url")), API, setting=self.setting("url"), example="http://localhost:8000"
        )
        key = self.settings.secret("CHROMA_API_KEY")
        headers = {}
        if key:
            headers = (
                {"Authorization": f"Bearer {key}"}
                if self.token_header == "authorization"
                else {"x-chroma-token": key}
            )
        self._client = JsonClient(
            url,
            what="Chroma",
            timeout_s=self.timeout_s,
            max_retries=self.max_retries,
            backoff_base_s=self.backoff_base_s,
            headers=headers,
            secrets=self.secret_values(),
            key_hint=self.key_hint(),
            reconnect_after_s=0,  # the engine's own breaker covers it
            requests_per_second=self.requests_per_second,
            hints=self.hints(),
        )
        try:
            info = self._client.get(self._path(self.collection)).data
        except HostedCallError as exc:
            if exc.status == 404:
                raise EngineSettingError(
                    f"Chroma at {self.address} has no collection {self.collection!r} in tenant "
                    f"{self.options.get('tenant')!r}, database {self.options.get('database')!r} ({exc.message}).",
                    setting=self.setting("collection"),
                    hint=f"set {self.setting('collection')} to a collection that exists{self._known()}",
                ) from None
            raise
        if not isinstance(info, dict) or "id" not in info:
            raise EngineSettingError(
                f"{self.what} answered the collection lookup without an id (its keys: {describe_keys(info)}).",
                setting=self.setting("url"),
                hint=f"check {self.setting('url')} points at a Chroma server (API v2)",
            )
        self._collection_id = str(info["id"])
        config = info.get("configuration_json") or {}
        hnsw = config.get("hnsw") if isinstance(config, dict) else None
        metadata = info.get("metadata") or {}
        space = (hnsw or {}).get("space") if isinstance(hnsw, dict) else None
        self._space = str(space or metadata.get("hnsw:space") or "l2").lower()
        self.scale = ScoreScale.COSINE if self._space == "cosine" else ScoreScale.FIRST_STAGE  # type: ignore[misc]
        dim = info.get("dimension")
        model_dim = self.embedder.dimension
        if isinstance(dim, int) and model_dim is not None and dim != model_dim:
            raise EngineSettingError(
                f"collection {self.collection!r} holds {dim}-dimensional embeddings, but {self.setting('model')} = "
                f"{self.embedder.model_name!r} gives {model_dim}.",
                setting=self.setting("model"),
                hint="the query embedder must be the model the collection's embeddings came from",
            )

    def _known(self) -> str:
        assert self._client is not None
        try:
            found = self._client.get(self._path(), params={"limit": 20}).data
            names = sorted(str(c.get("name")) for c in found if isinstance(c, dict))
        except Exception:  # noqa: BLE001 - only to enrich the message
            return ""
        return f" (collections: {', '.join(names) or 'none'})"

    # -- searching --------------------------------------------------------------------------------
    def _query(self, query: str, k: int) -> list[Hit]:
        assert self._client is not None and self._collection_id is not None
        include = ["distances"]
        fields = [self.field_option(f) for f in ("id_field", "title_field", "text_field")]
        if "document" in fields:
            include.append("documents")
        if any(f and f != "document" for f in fields):
            include.append("metadatas")
        body = {"query_embeddings": [self.embedder(query)], "n_results": k, "include": include}
        data = self._client.post(self._path(self._collection_id, "query"), body).data
        if not isinstance(data, dict) or not isinstance(data.get("ids"), list):
            raise EngineSettingError(
                f"{self.what} answered the query without ids (its keys: {describe_keys(data)}).",
                setting=self.setting("url"),
                hint=f"check {self.setting('url')} points at a Chroma server (API v2)",
            )
        ids = (data["ids"] or [[]])[0]
        distances = ((data.get("distances") or [[]])[0]) or [None] * len(ids)
        documents = ((data.get("documents") or [[]])[0]) or [None] * len(ids)
        metadatas = ((data.get("metadatas") or [[]])[0]) or [None] * len(ids)
        hits = []
        for chroma_id, distance, document, metadata in zip(
            ids, distances, documents, metadatas, strict=False
        ):
            record = {**(metadata or {}), "document": document}
            if document is None:
                record.pop("document")
            d = float(distance) if distance is not None else 0.0
            score = -d if self._space == "l2" else 1.0 - d
            hits.append(self.make_hit(self.read_id(record, chroma_id), score, record))
        return hits

    def close(self) -> None:
        super().close()
        if self._client is not None:
            self._client.close()
            self._client = None
