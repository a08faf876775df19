"""Elasticsearch as a first stage, through the elasticsearch 9 client (its retries off; ours apply).

Settings (``[methods.elasticsearch]``; see :mod:`rerank_core.retrieval.search_dsl` for the request)::

    url = "https://es.internal:9200"         # or a list of nodes
    index = "docs"
    text_field = "text"                      # "" = text from the loaded corpus by id
    title_field = "title"                    # optional
    id_field = "doc_id"                      # optional: a _source field instead of _id
    fields = ["title^2", "text"]             # the default multi_match's fields
    query = '{"query": {"match": {"text": "{{query}}"}}}'   # optional template in the DSL
    knn_field = "embedding"                  # optional: approximate kNN on this dense_vector field ...
    num_candidates = 100                     # ... with this many candidates per shard (at least k)
    model = "sentence-transformers/all-MiniLM-L6-v2"        # ... embedding the query with this
    username = "reader"                      # with RERANK_ELASTICSEARCH_PASSWORD, or instead:
                                             # RERANK_ELASTICSEARCH_API_KEY (an encoded API key)
    verify_certs = true
    ca_certs = "/etc/ssl/es-ca.pem"

The kNN body is Elasticsearch's top-level ``knn`` section:
``{"knn": {"field", "query_vector", "k", "num_candidates"}}``. A server that is not Elasticsearch
(the client checks the ``X-Elastic-Product`` header) is reported as such: use ``opensearch`` for
OpenSearch.
"""

from __future__ import annotations

from typing import Any

from rerank_core.errors import EngineSettingError
from rerank_core.http import TransportFailure
from rerank_core.retrieval.base import Hit
from rerank_core.retrieval.search_dsl import DSL_DEFAULTS, SearchDSLRetriever


class ElasticsearchRetriever(SearchDSLRetriever):
    name = "elasticsearch"
    title = "Elasticsearch"
    description = "first stage from an Elasticsearch index: BM25, a query template in its DSL, or kNN"
    engine = "Elasticsearch"
    secrets = ("RERANK_ELASTICSEARCH_API_KEY", "RERANK_ELASTICSEARCH_PASSWORD")
    defaults = {**DSL_DEFAULTS, "num_candidates": 100}

    def __init__(self, settings=None, **options: Any) -> None:
        super().__init__(settings, **options)
        self._client: Any = None

    def knn_body(self, field: str, vector: list[float], k: int) -> dict[str, Any]:
        candidates = max(int(self.options.get("num_candidates") or 100), k)
        return {"knn": {"field": field, "query_vector": vector, "k": k, "num_candidates": candidates}}

    def _connect(self) -> None:
        try:
            from elasticsearch import Elasticsearch
        except ImportError as exc:  # pragma: no cover - in requirements.txt
            from rerank_core.errors import BackendUnavailable

            raise BackendUnavailable(
                f"elasticsearch needs the elasticsearch client ({exc}).",
                hint="pip install -r requirements.txt",
            ) from exc
        kwargs: dict[str, Any] = {
            "hosts": self.urls,
            "request_timeout": self.timeout_s,
            "max_retries": 0,
            "retry_on_timeout": False,
            "verify_certs": bool(self.options.get("verify_certs", True)),
        }
        if self.options.get("ca_certs"):
            kwargs["ca_certs"] = str(self.options["ca_certs"])
        api_key = self.settings.secret("RERANK_ELASTICSEARCH_API_KEY")
        user = self.options.get("username")
        if api_key:
            kwargs["api_key"] = api_key
        elif user:
            kwargs["basic_auth"] = (str(user), self.settings.secret("RERANK_ELASTICSEARCH_PASSWORD") or "")
        self.index  # noqa: B018 - a missing index setting fails here, before any call
        self._client = Elasticsearch(**kwargs)
        self.check_mapping(self.fetch_mapping())

    def _query(self, query: str, k: int) -> list[Hit]:
        body = self.request_body(query, k)
        data = self.call(lambda: self._search_once(body))
        return self.read_hits(data)

    def _search_once(self, body: dict[str, Any]) -> Any:
        return self._guard(lambda: self._client.search(index=self.index, body=body).body)

    def _mapping_once(self) -> Any:
        return self._guard(lambda: self._client.indices.get_mapping(index=self.index).body)

    def _guard(self, fn: Any) -> Any:
        """``fn()`` with the elasticsearch client's exceptions read: settings errors, or transport
        failures for the shared retry policy."""
        import elasticsearch as es

        try:
            return fn()
        except es.UnsupportedProductError:
            raise EngineSettingError(
                f"the server at {self.address} is not Elasticsearch (it did not identify itself as one).",
                setting=self.setting("url"),
                hint=f"point {self.setting('url')} at Elasticsearch, or use the opensearch first stage for OpenSearch",
            ) from None
        except es.ConnectionTimeout:
            raise TransportFailure("timeout", timed_out=True) from None
        except es.ConnectionError as exc:
            raise TransportFailure(type(exc).__name__, connection=True) from None
        except es.ApiError as exc:
            status = exc.meta.status if exc.meta is not None else None
            body_info = exc.body if isinstance(exc.body, dict) else {"error": str(exc.body or exc.message)}
            refused = self.refused(status, body_info)
            if refused is not None:
                raise refused from None
            headers = dict(exc.meta.headers) if exc.meta is not None and exc.meta.headers else None
            raise TransportFailure(str(exc.message), status=status, headers=headers, body=body_info) from None

    def close(self) -> None:
        super().close()
        if self._client is not None:
            self._client.close()
            self._client = None
