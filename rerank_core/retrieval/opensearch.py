"""OpenSearch as a first stage, through opensearch-py (the clients' retries off; ours apply).

Settings (``[methods.opensearch]``; see :mod:`rerank_core.retrieval.search_dsl` for the request)::

    url = "https://search.internal:9200"     # or a list of nodes
    index = "docs"
    text_field = "text"                      # "" = text from the loaded corpus by id
    title_field = "title"                    # optional
    id_field = "doc_id"                      # optional: a _source field instead of _id
    fields = ["title^2", "text"]             # the default multi_match's fields
    query = '{"query": {"match": {"text": "{{query}}"}}}'   # optional template in the DSL
    knn_field = "embedding"                  # optional: k-NN on this knn_vector field ...
    model = "sentence-transformers/all-MiniLM-L6-v2"        # ... embedding the query with this
    username = "reader"                      # password: RERANK_OPENSEARCH_PASSWORD
    verify_certs = true
    ca_certs = "/etc/ssl/search-ca.pem"

The k-NN body is the k-NN plugin's query: ``{"query": {"knn": {field: {"vector": [...], "k": k}}}}``.
"""

from __future__ import annotations

from typing import Any

from rerank_core.http import TransportFailure
from rerank_core.retrieval.base import Hit
from rerank_core.retrieval.search_dsl import DSL_DEFAULTS, SearchDSLRetriever


class OpenSearchRetriever(SearchDSLRetriever):
    name = "opensearch"
    title = "OpenSearch"
    description = "first stage from an OpenSearch index: BM25, a query template in its DSL, or k-NN"
    engine = "OpenSearch"
    secrets = ("RERANK_OPENSEARCH_PASSWORD",)
    defaults = dict(DSL_DEFAULTS)

    def __init__(self, settings=None, **options: Any) -> None:
        super().__init__(settings, **options)
        self._client: Any = None

    def knn_body(self, field: str, vector: list[float], k: int) -> dict[str, Any]:
        return {"query": {"knn": {field: {"vector": vector, "k": k}}}}

    def _connect(self) -> None:
        try:
            from opensearchpy import OpenSearch
        except ImportError as exc:  # pragma: no cover - in requirements.txt
            from rerank_core.errors import BackendUnavailable

            raise BackendUnavailable(
                f"opensearch needs opensearch-py ({exc}).", hint="pip install -r requirements.txt"
            ) from exc
        kwargs: dict[str, Any] = {
            "hosts": self.urls,
            "timeout": self.timeout_s,
            "max_retries": 0,
            "retry_on_timeout": False,
            "verify_certs": bool(self.options.get("verify_certs", True)),
        }
        if self.options.get("ca_certs"):
            kwargs["ca_certs"] = str(self.options["ca_certs"])
        user = self.options.get("username")
        if user:
            kwargs["http_auth"] = (str(user), self.settings.secret("RERANK_OPENSEARCH_PASSWORD") or "")
        self.index  # noqa: B018 - a missing index setting fails here, before any call
        self._client = OpenSearch(**kwargs)
        self.check_mapping(self.fetch_mapping())

    def _query(self, query: str, k: int) -> list[Hit]:
        body = self.request_body(query, k)
        data = self.call(lambda: self._search_once(body))
        return self.read_hits(data)

    def _search_once(self, body: dict[str, Any]) -> Any:
        return self._guard(lambda: self._client.search(index=self.index, body=body))

    def _mapping_once(self) -> Any:
        return self._guard(lambda: self._client.indices.get_mapping(index=self.index))

    def _guard(self, fn: Any) -> Any:
        """``fn()`` with opensearch-py's exceptions read: settings errors, or transport failures
        for the shared retry policy."""
        from opensearchpy import exceptions as ose

        try:
            return fn()
        except ose.ConnectionTimeout:
            raise TransportFailure("timeout", timed_out=True) from None
        except ose.ConnectionError as exc:
            raise TransportFailure(
                type(exc.info).__name__ if exc.info else "connection", connection=True
            ) from None
        except ose.TransportError as exc:
            status = exc.status_code if isinstance(exc.status_code, int) else None
            body_info = exc.info if isinstance(exc.info, dict) else {"error": str(exc.error)}
            refused = self.refused(status, body_info)
            if refused is not None:
                raise refused from None
            raise TransportFailure(str(exc.error), status=status, body=body_info) from None

    def close(self) -> None:
        super().close()
        if self._client is not None:
            self._client.close()
            self._client = None
