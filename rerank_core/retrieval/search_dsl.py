"""What the OpenSearch and Elasticsearch first stages share: a ``_search`` request in the query DSL.

The request body is, in order of precedence:

* ``query``: a template in the engine's DSL, a TOML table or JSON text, with ``{{query}}`` where
  the query text goes, ``{{k}}`` for the number of hits and ``{{vector}}`` for the query's
  embedding (then the query embedder ``model`` runs). Anything the engine accepts works: match,
  multi_match, bool, a hybrid query, a script score, a kNN clause, a rank or retriever block;
* ``knn_field`` (no template): a k-NN search of the query embedding against that vector field;
* otherwise a ``multi_match`` of the query over ``fields`` (default: the title and text fields),
  the engine's BM25.

``size`` is set to k and ``_source`` to the id, title and text fields unless the template sets
them. Hits are read from ``hits.hits``: the id is ``_id`` (or ``id_field`` in ``_source``), the
score ``_score`` (a hit without one, from a sorted query, gets a score from its position: n, n-1,
...), title and text from ``title_field`` and ``text_field`` in ``_source`` (dotted paths reach
nested fields; ``""`` takes them from the corpus by id).

Errors name the setting: a missing index ``index``; a query the engine refuses ``query`` (or
``knn_field``, or ``model`` when the vector's dimension is wrong); a connection failure ``url``;
refused credentials the secret. Calls go through the shared retry policy (the clients' own retries
are off).
"""

from __future__ import annotations

from typing import Any, ClassVar

from rerank_core.errors import ConfigError, EngineSettingError
from rerank_core.http import redact
from rerank_core.models import MINILM_ID
from rerank_core.retrieval.base import Hit
from rerank_core.retrieval.engine import (
    REQUIRED,
    EngineRetriever,
    check_url,
    describe_keys,
    is_missing,
    lookup,
    render_template,
    str_list,
    uses_placeholder,
)
from rerank_core.types import ScoreScale

DSL_DEFAULTS: dict[str, Any] = {
    "url": "http://localhost:9200",
    "index": REQUIRED,
    "query": None,
    "fields": None,
    "id_field": None,
    "title_field": None,
    "text_field": "text",
    "knn_field": None,
    "model": MINILM_ID,
    "normalize": True,
    "username": None,
    "verify_certs": True,
    "ca_certs": None,
}


class SearchDSLRetriever(EngineRetriever):
    """A ``_search`` first stage; subclasses build the client and read its exceptions."""

    examples: ClassVar[dict[str, str]] = {"index": '"docs"', "url": '"http://localhost:9200"'}

    def __init__(self, settings=None, **options: Any) -> None:
        super().__init__(settings, **options)
        template = self.options.get("query")
        if template is not None and not isinstance(template, (str, dict)):
            raise ConfigError(
                f"{self.setting('query')} must be a table or JSON text, not {type(template).__name__}.",
                hint='e.g. query = { query = { match = { text = "{{query}}" } } }',
            )
        if template is None and self.field_option("knn_field") is None:
            self.scale = ScoreScale.BM25  # type: ignore[misc]

    @property
    def urls(self) -> list[str]:
        urls = str_list(self.options.get("url"), setting=self.setting("url"))
        return [check_url(u, setting=self.setting("url"), example="https://localhost:9200") for u in urls]

    @property
    def index(self) -> str:
        return str(self.option("index"))

    @property
    def target(self) -> str:
        mode = (
            "query template"
            if self.options.get("query") is not None
            else (
                f"k-NN on {self.options['knn_field']}"
                if self.field_option("knn_field")
                else "BM25 multi_match"
            )
        )
        return f"index {self.options.get('index')} ({mode})"

    # -- the request ------------------------------------------------------------------------------
    def search_fields(self) -> list[str]:
        fields = self.options.get("fields")
        if fields is not None:
            return str_list(fields, setting=self.setting("fields"))
        found = [f for f in (self.field_option("title_field"), self.field_option("text_field")) if f]
        if not found:
            raise ConfigError(
                f"{self.section}: no field to search in (fields, title_field and text_field are all empty).",
                hint='set fields = ["title", "text"] or a query template',
            )
        return found

    def knn_body(self, field: str, vector: list[float], k: int) -> dict[str, Any]:
        raise NotImplementedError

    def request_body(self, query: str, k: int) -> dict[str, Any]:
        template = self.options.get("query")
        knn_field = self.field_option("knn_field")
        values: dict[str, Any] = {"query": query, "k": k}
        if (template is not None and uses_placeholder(template, "vector")) or (
            template is None and knn_field
        ):
            values["vector"] = self.embedder(query)
        if template is not None:
            body = render_template(template, values, setting=self.setting("query"))
            if not isinstance(body, dict):
                raise ConfigError(
                    f"{self.setting('query')} must give a JSON object (a _search body).",
                    hint='e.g. query = { query = { match = { text = "{{query}}" } } }',
                )
        elif knn_field:
            body = self.knn_body(knn_field, values["vector"], k)
        else:
            body = {"query": {"multi_match": {"query": query, "fields": self.search_fields()}}}
        body.setdefault("size", k)
        wanted = self.wanted_fields()
        if "_source" not in body and wanted:
            body["_source"] = wanted
        return body

    # -- the index's mapping: settings checked once, before the first search ------------------------
    def check_mapping(self, response: Any) -> None:
        """Check the configured fields against the index mapping (``GET /<index>/_mapping``):
        a field that is not there is an :class:`EngineSettingError` listing the fields that are.
        Indexes that keep unmapped fields (``dynamic: false``) are not checked."""
        fields: dict[str, str] = {}
        dynamic_off = False
        for content in (response or {}).values() if isinstance(response, dict) else []:
            mappings = content.get("mappings", {}) if isinstance(content, dict) else {}
            if str(mappings.get("dynamic", "true")).lower() in ("false", "runtime"):
                dynamic_off = True
            _flatten(mappings.get("properties", {}), "", fields)
        if not fields or dynamic_off:
            return
        known = ", ".join(sorted(fields)[:20]) + (", ..." if len(fields) > 20 else "")
        checks = [(k, self.field_option(k)) for k in ("id_field", "title_field", "text_field")]
        if self.options.get("query") is None and self.field_option("knn_field") is None:
            checks += [("fields", f.split("^")[0]) for f in self.search_fields() if "*" not in f]
        for option, name in checks:
            if name and name not in fields:
                raise EngineSettingError(
                    f"index {self.index!r} has no field {name!r} (its fields: {known}).",
                    setting=self.setting(option),
                    hint=f"set {self.setting(option)} to one of the index's fields",
                )
        knn = self.field_option("knn_field")
        if knn and self.options.get("query") is None:
            kind = fields.get(knn)
            vectors = sorted(f for f, t in fields.items() if t in ("knn_vector", "dense_vector"))
            if kind not in ("knn_vector", "dense_vector"):
                found = f"is a {kind} field" if kind else "does not exist"
                raise EngineSettingError(
                    f"{self.setting('knn_field')} = {knn!r}: in index {self.index!r} it {found}, not a vector field "
                    f"(vector fields: {', '.join(vectors) or 'none'}).",
                    setting=self.setting("knn_field"),
                    hint=f"set {self.setting('knn_field')} to a knn_vector / dense_vector field of the index",
                )

    def fetch_mapping(self) -> Any:
        """The index mapping, or None when the credentials may not read it (the check is skipped)."""
        from rerank_core.errors import HostedCallError

        try:
            return self.call(self._mapping_once)
        except HostedCallError as exc:
            if exc.status == 403:
                return None
            raise

    def _mapping_once(self) -> Any:
        raise NotImplementedError

    # -- the answer ---------------------------------------------------------------------------------
    def read_hits(self, data: Any) -> list[Hit]:
        hits = lookup(data, "hits.hits")
        if is_missing(hits) or not isinstance(hits, list):
            raise EngineSettingError(
                f"{self.what} answered without hits.hits (its keys: {describe_keys(data)}).",
                setting=self.setting("url"),
                hint=f"check {self.setting('url')} points at {self.engine} and the query template is a _search body",
            )
        out = []
        for rank, hit in enumerate(hits):
            if not isinstance(hit, dict):
                continue
            source = hit.get("_source") or {}
            doc_id = self.read_id(source, hit.get("_id"))
            score = hit.get("_score")
            if not isinstance(score, (int, float)) or isinstance(score, bool):
                score = float(len(hits) - rank)  # sorted results carry no score: keep the engine's order
            out.append(self.make_hit(doc_id, float(score), source))
        return out

    def refused(self, status: int | None, body: Any) -> EngineSettingError | None:
        """The settings error an engine's error answer points at, if it points at one."""
        error = body.get("error") if isinstance(body, dict) else None
        types: list[str] = []
        reasons: list[str] = []
        if isinstance(error, dict):
            for part in [error, *(error.get("root_cause") or []), error.get("caused_by") or {}]:
                if isinstance(part, dict):
                    types.append(str(part.get("type", "")))
                    reasons.append(str(part.get("reason", "")))
        elif isinstance(error, str):
            types.append(error)
        reason = redact(next((r for r in reasons if r), ""), self.secret_values())
        if "index_not_found_exception" in types or (status == 404 and "no such index" in reason):
            return EngineSettingError(
                f"{self.engine} has no index {self.index!r} ({reason or 'index_not_found_exception'}).",
                setting=self.setting("index"),
                hint=f"set {self.setting('index')} to an index (or alias) that exists on {self.address}",
            )
        if status == 400:
            knn = self.field_option("knn_field")
            text = " ".join(reasons).lower()
            if "dimension" in text:
                setting = self.setting("model")
                hint = f"the query embedder must be the model the index's vectors came from: fix {setting}"
            elif knn and knn.lower() in text:
                setting = self.setting("knn_field")
                hint = f"set {setting} to a vector field of index {self.index!r}"
            else:
                setting = self.setting("query")
                hint = f"fix {setting} (or fields / text_field) so {self.engine} accepts it"
            return EngineSettingError(
                f"{self.engine} refused the search of index {self.index!r}: {reason or ', '.join(t for t in types if t)}",
                setting=setting,
                hint=hint,
            )
        return None


def _flatten(properties: Any, prefix: str, out: dict[str, str]) -> None:
    """Field paths of a mapping's ``properties`` (objects walked, multi-fields included)."""
    if not isinstance(properties, dict):
        return
    for name, spec in properties.items():
        if not isinstance(spec, dict):
            continue
        path = f"{prefix}{name}"
        out[path] = str(spec.get("type", "object"))
        _flatten(spec.get("properties"), f"{path}.", out)
        for sub, sub_spec in (spec.get("fields") or {}).items():
            if isinstance(sub_spec, dict):
                out[f"{path}.{sub}"] = str(sub_spec.get("type", ""))
