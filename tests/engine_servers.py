"""A small in-memory search engine answering ``_search`` in the OpenSearch / Elasticsearch wire format.

It exists to test the clients' plumbing (what is sent, how answers and errors are read), not to
rank well: ``match``/``multi_match`` score by how many query words a document's fields contain,
``knn`` (Elasticsearch's top-level section and OpenSearch's ``query.knn`` clause) by the cosine
of the vector it was sent and the stored one. ``size`` and ``_source`` filtering are honoured; an
unknown index gets the engine's ``index_not_found_exception``; an unknown query clause a
``parsing_exception``; a vector of the wrong length the engine's dimension error.

Mount it on a :class:`LoopbackServer` with :meth:`SearchEngine.mount` (Elasticsearch flavour adds
the ``X-Elastic-Product`` header the official client checks).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from loopback_servers import LoopbackServer, Recorded, Reply

_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def es_error(status: int, kind: str, reason: str, **extra: Any) -> Reply:
    cause = {"type": kind, "reason": reason, **extra}
    return Reply(status=status, body={"error": {"root_cause": [cause], **cause}, "status": status})


@dataclass
class SearchEngine:
    """``docs``: id -> source fields; ``vectors``: id -> stored vector (for kNN)."""

    docs: dict[str, dict[str, Any]]
    index: str = "docs"
    vectors: dict[str, list[float]] = field(default_factory=dict)
    vector_field: str = "embedding"

    def mount(self, server: LoopbackServer, *, elasticsearch: bool = False) -> LoopbackServer:
        if elasticsearch:
            server.default_headers["X-Elastic-Product"] = "Elasticsearch"
        server.fallback = self.respond
        return server

    def mapping(self) -> dict[str, Any]:
        """The index mapping: text fields, numbers as longs, the vector field as a dense vector."""
        properties: dict[str, Any] = {}
        for source in self.docs.values():
            for key, value in source.items():
                kind = "long" if isinstance(value, int) else "text"
                properties[key] = {"type": kind}
                if kind == "text":
                    properties[key]["fields"] = {"keyword": {"type": "keyword"}}
        if self.vectors:
            dims = len(next(iter(self.vectors.values())))
            properties[self.vector_field] = {"type": "dense_vector", "dims": dims}
        return {self.index: {"mappings": {"properties": properties}}}

    def respond(self, rec: Recorded) -> Reply:
        m = re.fullmatch(r"/([^/]+)/(_search|_mapping)", rec.path)
        if not m:
            return es_error(400, "illegal_argument_exception", f"no handler for {rec.method} {rec.path}")
        if m.group(1) != self.index:
            return es_error(
                404, "index_not_found_exception", f"no such index [{m.group(1)}]", index=m.group(1)
            )
        if m.group(2) == "_mapping":
            return Reply(body=self.mapping())
        body = rec.body or {}
        size = int(body.get("size", 10))
        try:
            scored = self._score(body)
        except ValueError as exc:
            return es_error(400, "illegal_argument_exception", str(exc))
        except KeyError as exc:
            return es_error(400, "parsing_exception", f"unknown query [{exc.args[0]}]")
        ranked = sorted(scored.items(), key=lambda pair: (-pair[1], pair[0]))[:size]
        wanted = body.get("_source", True)
        hits = []
        for doc_id, score in ranked:
            hit: dict[str, Any] = {"_index": self.index, "_id": doc_id, "_score": score}
            if wanted is not False:
                source = self.docs[doc_id]
                if isinstance(wanted, list):
                    source = {k: v for k, v in source.items() if k in wanted}
                hit["_source"] = source
            hits.append(hit)
        return Reply(
            body={
                "took": 1,
                "timed_out": False,
                "hits": {"total": {"value": len(scored), "relation": "eq"}, "max_score": None, "hits": hits},
            }
        )

    # -- scoring -------------------------------------------------------------------------------
    def _knn(self, field_name: str, vector: list[float]) -> dict[str, float]:
        if field_name != self.vector_field:
            raise ValueError(f"failed to create query: field [{field_name}] does not exist in the mapping")
        out = {}
        for doc_id, stored in self.vectors.items():
            if len(stored) != len(vector):
                raise ValueError(
                    f"the query vector has a different dimension [{len(vector)}] than the index vectors "
                    f"[{len(stored)}]"
                )
            dot = sum(a * b for a, b in zip(stored, vector, strict=True))
            norm = math.sqrt(sum(a * a for a in stored)) * math.sqrt(sum(b * b for b in vector))
            out[doc_id] = dot / norm if norm else 0.0
        return out

    def _overlap(self, query: str, fields: list[str]) -> dict[str, float]:
        q = words(query)
        out = {}
        for doc_id, source in self.docs.items():
            text = " ".join(str(source.get(f.split("^")[0], "")) for f in fields)
            score = float(len(q & words(text)))
            if score > 0:
                out[doc_id] = score
        return out

    def _score(self, body: dict[str, Any]) -> dict[str, float]:
        if "knn" in body:  # Elasticsearch's top-level kNN section
            knn = body["knn"]
            return self._knn(knn["field"], knn["query_vector"])
        query = body.get("query", {"match_all": {}})
        (kind, clause), *_ = query.items()
        if kind == "match_all":
            return {doc_id: 1.0 for doc_id in self.docs}
        if kind == "knn":  # OpenSearch's k-NN query clause
            (field_name, spec), *_ = clause.items()
            return self._knn(field_name, spec["vector"])
        if kind == "multi_match":
            return self._overlap(clause["query"], list(clause.get("fields", ["text"])))
        if kind == "match":
            (field_name, value), *_ = clause.items()
            text = value["query"] if isinstance(value, dict) else value
            return self._overlap(str(text), [field_name])
        raise KeyError(kind)
