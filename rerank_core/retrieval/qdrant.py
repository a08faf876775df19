"""Qdrant as a first stage, through qdrant-client: nearest neighbours of the query embedding.

Settings (``[methods.qdrant]``)::

    url = "http://localhost:6333"            # a Qdrant server (key: QDRANT_API_KEY), or instead:
    path = "/data/qdrant"                    # a local on-disk collection (qdrant-client's local mode)
    collection = "docs"
    vector_name = "dense"                    # a named vector; omit for the collection's only vector
    model = "sentence-transformers/all-MiniLM-L6-v2"   # the query embedder: the collection's model
    id_field = "doc_id"                      # optional: a payload field instead of the point id
    title_field = "title"                    # optional payload field
    text_field = "text"                      # payload field; "" = text from the loaded corpus by id
    exact = false                            # true: exact search instead of the HNSW index
    hnsw_ef = 128                            # optional: HNSW search breadth
    prefer_grpc = false

Before the first search the collection is checked once (``get_collection``): it must exist, the
vector name must be one of its vectors, and the vector size must be the model's dimension; each
mismatch is an :class:`EngineSettingError` naming the setting. Scores are Qdrant's: the cosine
similarity for a Cosine collection, the dot product or the Euclidean / Manhattan distance
otherwise (``first-stage score``). Calls go through the shared retry policy.
"""

from __future__ import annotations

from typing import Any

from rerank_core.config import Settings
from rerank_core.errors import BackendUnavailable, EngineSettingError
from rerank_core.http import TransportFailure, redact
from rerank_core.models import MINILM_ID
from rerank_core.retrieval.base import Hit
from rerank_core.retrieval.engine import REQUIRED, EngineRetriever, check_url
from rerank_core.types import ScoreScale


class QdrantRetriever(EngineRetriever):
    name = "qdrant"
    title = "Qdrant"
    description = "first stage from a Qdrant collection: nearest neighbours of the query embedding"
    engine = "Qdrant"
    secrets = ("QDRANT_API_KEY",)
    default_model = MINILM_ID
    defaults = {
        "url": "http://localhost:6333",
        "path": None,
        "collection": REQUIRED,
        "vector_name": None,
        "model": MINILM_ID,
        "normalize": True,
        "id_field": None,
        "title_field": None,
        "text_field": "text",
        "exact": False,
        "hnsw_ef": None,
        "prefer_grpc": False,
    }
    examples = {"collection": '"docs"', "url": '"http://localhost:6333"'}

    def __init__(self, settings: Settings | None = None, **options: Any) -> None:
        super().__init__(settings, **options)
        if self.options.get("path"):
            self.url_option = "path"  # type: ignore[misc]
        self._client: Any = None
        self._vector_name: str | None = None

    @property
    def collection(self) -> str:
        return str(self.option("collection"))

    @property
    def address(self) -> str:
        path = self.options.get("path")
        return f"local path {path}" if path else super().address

    @property
    def target(self) -> str:
        name = self.options.get("vector_name")
        return f"collection {self.options.get('collection')}" + (f" ({name})" if name else "")

    # -- connection and checks ----------------------------------------------------------------------
    def _connect(self) -> None:
        try:
            from qdrant_client import QdrantClient
        except ImportError as exc:  # pragma: no cover - in requirements.txt
            raise BackendUnavailable(
                f"qdrant needs qdrant-client ({exc}).", hint="pip install -r requirements.txt"
            ) from exc
        path = self.options.get("path")
        if path:
            self._client = QdrantClient(path=str(path))
        else:
            url = check_url(
                str(self.option("url")), setting=self.setting("url"), example="http://localhost:6333"
            )
            self._client = QdrantClient(
                url=url,
                api_key=self.settings.secret("QDRANT_API_KEY"),
                timeout=self.timeout_s,  # type: ignore[arg-type]
                prefer_grpc=bool(self.options.get("prefer_grpc")),
                check_compatibility=False,
            )
        info = self.call(lambda: self._guard(lambda: self._client.get_collection(self.collection)))
        self._check(info)

    def _check(self, info: Any) -> None:
        vectors = info.config.params.vectors
        wanted = self.options.get("vector_name") or None
        if isinstance(vectors, dict):
            names = sorted(vectors)
            if wanted is None and len(names) == 1:
                wanted = names[0]
            if wanted not in vectors:
                raise EngineSettingError(
                    f"collection {self.collection!r} has no vector named {wanted!r} (its vectors: "
                    f"{', '.join(names) or 'none'}).",
                    setting=self.setting("vector_name"),
                    hint=f"set {self.setting('vector_name')} to one of them",
                )
            params = vectors[wanted]
        else:
            if wanted:
                raise EngineSettingError(
                    f"collection {self.collection!r} has one unnamed vector, not {wanted!r}.",
                    setting=self.setting("vector_name"),
                    hint=f"remove {self.setting('vector_name')}",
                )
            params = vectors
        size = getattr(params, "size", None)
        dim = self.embedder.dimension
        if size is not None and dim is not None and int(size) != int(dim):
            raise EngineSettingError(
                f"collection {self.collection!r} holds {size}-dimensional vectors, but {self.setting('model')} = "
                f"{self.embedder.model_name!r} gives {dim}.",
                setting=self.setting("model"),
                hint="the query embedder must be the model the collection's vectors came from",
            )
        distance = str(getattr(getattr(params, "distance", None), "value", "")).lower()
        self.scale = ScoreScale.COSINE if distance == "cosine" else ScoreScale.FIRST_STAGE  # type: ignore[misc]
        self._vector_name = wanted

    # -- searching --------------------------------------------------------------------------------
    def _query(self, query: str, k: int) -> list[Hit]:
        from qdrant_client import models

        vector = self.embedder(query)
        wanted = self.wanted_fields()
        params = None
        if not self.options.get("path") and (self.options.get("exact") or self.options.get("hnsw_ef")):
            # (local mode always searches exactly and takes no search parameters)
            ef = self.options.get("hnsw_ef")
            params = models.SearchParams(
                exact=bool(self.options.get("exact")), hnsw_ef=int(ef) if ef else None
            )
        response = self.call(
            lambda: self._guard(
                lambda: self._client.query_points(
                    self.collection,
                    query=vector,
                    using=self._vector_name,
                    limit=k,
                    with_payload=wanted if wanted else False,
                    search_params=params,
                )
            )
        )
        hits = []
        for point in response.points:
            payload = point.payload or {}
            hits.append(self.make_hit(self.read_id(payload, point.id), float(point.score), payload))
        return hits

    def _guard(self, fn: Any) -> Any:
        """``fn()`` with qdrant-client's exceptions read (REST, gRPC and local mode)."""
        from qdrant_client.common.client_exceptions import QdrantException, ResourceExhaustedResponse
        from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

        try:
            return fn()
        except ResourceExhaustedResponse as exc:  # HTTP 429, with the server's Retry-After
            raise TransportFailure(
                str(exc), status=429, headers={"Retry-After": str(exc.retry_after_s)}
            ) from None
        except QdrantException as exc:
            if "Retry-After" in str(exc):  # a 429 whose Retry-After the client could not read
                raise TransportFailure(str(exc), status=429) from None
            raise
        except UnexpectedResponse as exc:
            text = _qdrant_error(exc.content)
            refused = self._refused(text, exc.status_code)
            if refused is not None:
                raise refused from None
            headers = dict(exc.headers) if exc.headers is not None else None
            raise TransportFailure(text, status=exc.status_code, headers=headers, body=text) from None
        except ResponseHandlingException as exc:
            import httpx

            source = getattr(exc, "source", None)
            if isinstance(source, httpx.TimeoutException):
                raise TransportFailure("timeout", timed_out=True) from None
            raise TransportFailure(type(source).__name__, connection=True) from None
        except ValueError as exc:  # local mode reports settings problems as ValueError
            refused = self._refused(str(exc), None)
            if refused is not None:
                raise refused from None
            raise
        except Exception as exc:  # gRPC
            code = getattr(exc, "code", None)
            if callable(code):
                name = getattr(code(), "name", "")
                if name == "DEADLINE_EXCEEDED":
                    raise TransportFailure("timeout", timed_out=True) from None
                if name == "UNAVAILABLE":
                    raise TransportFailure("unavailable", connection=True) from None
                details = getattr(exc, "details", lambda: "")() or ""
                refused = self._refused(str(details), 404 if name == "NOT_FOUND" else 400)
                if refused is not None:
                    raise refused from None
            raise

    def _refused(self, text: str, status: int | None) -> EngineSettingError | None:
        text = redact(text, self.secret_values())
        lowered = text.lower()
        if "collection" in lowered and ("not found" in lowered or "doesn't exist" in lowered):
            return EngineSettingError(
                f"Qdrant at {self.address} has no collection {self.collection!r} ({text}).",
                setting=self.setting("collection"),
                hint=f"set {self.setting('collection')} to a collection that exists{self._known_collections()}",
            )
        if "vector" in lowered and ("not found" in lowered or "not existing" in lowered):
            return EngineSettingError(
                f"Qdrant refused the vector name: {text}", setting=self.setting("vector_name")
            )
        if "dimension" in lowered or "not aligned" in lowered:
            return EngineSettingError(
                f"Qdrant refused the query vector: {text}",
                setting=self.setting("model"),
                hint="the query embedder must be the model the collection's vectors came from",
            )
        if status == 400:
            return EngineSettingError(f"Qdrant refused the search: {text}", setting=self.section)
        return None

    def _known_collections(self) -> str:
        try:
            names = sorted(c.name for c in self._client.get_collections().collections)
        except Exception:  # noqa: BLE001 - only to enrich the message
            return ""
        return f" (collections: {', '.join(names) or 'none'})"

    def close(self) -> None:
        super().close()
        if self._client is not None:
            self._client.close()
            self._client = None


def _qdrant_error(content: Any) -> str:
    """The error text of a Qdrant REST answer (``{"status": {"error": "..."}}``)."""
    import json

    try:
        data = json.loads(content) if isinstance(content, (bytes, str)) else content
    except ValueError:
        return str(content)[:200]
    if isinstance(data, dict):
        status = data.get("status")
        if isinstance(status, dict) and status.get("error"):
            return str(status["error"])
    return str(data)[:200]
