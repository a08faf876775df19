"""pgvector as a first stage: nearest neighbours of the query embedding in a PostgreSQL table.

Settings (``[methods.pgvector]``)::

    url = "postgresql://user@host:5432/db"   # or the environment variable RERANK_PGVECTOR_URL
    table = "docs"                           # or "schema.docs"
    id_column = "id"
    title_column = "title"                   # optional
    text_column = "text"                     # "" = text from the loaded corpus by id
    embedding_column = "embedding"
    model = "sentence-transformers/all-MiniLM-L6-v2"   # the query embedder; must be the table's model
    distance = "cosine"                      # cosine | l2 | inner_product
    ef_search = 100                          # optional: HNSW search breadth (raised to k when lower)
    probes = 10                              # optional: IVFFlat lists probed
    sql = "SELECT ..."                       # optional: your own query instead (below)

``RERANK_PGVECTOR_URL`` (environment or Streamlit secrets) wins over ``url``, so a URL with a
password never has to be written in the file; libpq's own ``PGPASSWORD`` and ``~/.pgpass`` work
too. A SQLAlchemy URL (``postgresql+psycopg://...``) is accepted.

The query is ``SELECT id, title, text, embedding <op> %(query_embedding)s FROM table ORDER BY
embedding <op> %(query_embedding)s LIMIT k`` with ``<=>`` (cosine distance; score = 1 - distance,
the cosine similarity), ``<->`` (L2 distance; score = -distance) or ``<#>`` (negative inner
product; score = the inner product). Without an index it is an exact scan, the same search as the
``dense`` first stage; with an HNSW index ``hnsw.ef_search`` is raised to k for the query (pgvector
returns at most ef_search rows). Queries are embedded with ``model`` and normalised like ``dense``.

``sql`` replaces the query with your own, with ``%(query_embedding)s`` (a vector), ``%(k)s`` and
``%(query)s`` (the text, for hybrid SQL) as parameters. It must return a column ``id`` and a
column ``score`` (higher is better) and may return ``title`` and ``text``.

Before the first search the table is checked once: it must exist, have the named columns, an
embedding column of type ``vector(d)`` with d the model's dimension and, when the table was filled
by ``python -m rerank_core pgvector load`` (its comment records the model), the same model. Each
mismatch is an :class:`EngineSettingError` naming the setting. One connection per retriever,
used by one query at a time; a lost connection is opened again on the next attempt.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from rerank_core.config import Settings
from rerank_core.errors import BackendUnavailable, ConfigError, EngineSettingError, HostedCallError
from rerank_core.http import TransportFailure, redact, url_password
from rerank_core.models import MINILM_ID
from rerank_core.retrieval.base import Hit
from rerank_core.retrieval.engine import REQUIRED, EngineRetriever
from rerank_core.types import ScoreScale

T = TypeVar("T")

URL_ENV = "RERANK_PGVECTOR_URL"
COMMENT_PREFIX = "rerank-playground "

#: distance -> (operator, operator class for an index, score from the operator's value)
DISTANCES: dict[str, tuple[str, str, Callable[[float], float]]] = {
    "cosine": ("<=>", "vector_cosine_ops", lambda d: 1.0 - d),
    "l2": ("<->", "vector_l2_ops", lambda d: -d),
    "inner_product": ("<#>", "vector_ip_ops", lambda d: -d),
}


def libpq_url(url: str) -> str:
    """A libpq URL from a SQLAlchemy one (``postgresql+psycopg://`` -> ``postgresql://``)."""
    scheme, sep, rest = url.partition("://")
    if sep and "+" in scheme:
        scheme = scheme.split("+", 1)[0]
    return f"{scheme}{sep}{rest}" if sep else url


def split_table(table: str) -> tuple[str, ...]:
    """``"schema.table"`` -> ("schema", "table"); ``"table"`` -> ("table",)."""
    parts = tuple(p.strip().strip('"') for p in table.split("."))
    if not 1 <= len(parts) <= 2 or not all(parts):
        raise ConfigError(f"{table!r} is not a table name.", hint='use "docs" or "schema.docs"')
    return parts


def table_comment(model: str, *, normalize: bool, distance: str, documents: int, fingerprint: str) -> str:
    """What the loader records on the table: which model made its vectors."""
    meta = {
        "model": model,
        "normalize": normalize,
        "distance": distance,
        "documents": documents,
        "corpus_fingerprint": fingerprint,
    }
    return COMMENT_PREFIX + json.dumps(meta, sort_keys=True)


def read_comment(comment: str | None) -> dict[str, Any]:
    if not comment or not comment.startswith(COMMENT_PREFIX):
        return {}
    try:
        meta = json.loads(comment[len(COMMENT_PREFIX) :])
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


class PgvectorRetriever(EngineRetriever):
    name = "pgvector"
    title = "pgvector"
    description = (
        "first stage from a PostgreSQL table with a pgvector column: nearest neighbours of the query"
    )
    engine = "PostgreSQL (pgvector)"
    secrets = (URL_ENV,)
    default_model = MINILM_ID
    defaults = {
        "url": None,
        "table": REQUIRED,
        "id_column": "id",
        "title_column": None,
        "text_column": "text",
        "embedding_column": "embedding",
        "model": MINILM_ID,
        "normalize": True,
        "distance": "cosine",
        "ef_search": None,
        "probes": None,
        "sql": None,
    }
    examples = {"table": '"docs"', "url": '"postgresql://user@host:5432/db"'}

    def __init__(self, settings: Settings | None = None, **options: Any) -> None:
        super().__init__(settings, **options)
        distance = str(self.options.get("distance") or "cosine").lower()
        if distance not in DISTANCES:
            raise ConfigError(
                f"{self.setting('distance')} = {distance!r} is not a pgvector distance.",
                hint=f"use one of: {', '.join(DISTANCES)}",
            )
        self.distance = distance
        if distance != "cosine" or self.options.get("sql"):
            self.scale = ScoreScale.FIRST_STAGE  # type: ignore[misc]
        else:
            self.scale = ScoreScale.COSINE  # type: ignore[misc]
        self._conn: Any = None
        self._conn_lock = threading.Lock()

    # -- settings ------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        url = self.settings.secret(URL_ENV) or self.options.get("url")
        if not url:
            raise ConfigError(
                f"{self.setting('url')} is not set and {URL_ENV} is empty: the database is unknown.",
                hint=f'set url = "postgresql://user@host:5432/db" under {self.section}, or {URL_ENV} in the '
                "environment (with the password)",
            )
        return libpq_url(str(url))

    @property
    def address(self) -> str:
        from rerank_core.http import safe_url

        try:
            return safe_url(self.url)
        except ConfigError:
            return ""

    @property
    def target(self) -> str:
        if self.options.get("sql"):
            return "your SQL"
        return f"table {self.options.get('table')} ({self.distance})"

    def secret_values(self) -> tuple[str, ...]:
        values = [self.settings.secret(URL_ENV), url_password(self.options.get("url"))]
        values.append(url_password(self.settings.secret(URL_ENV)))
        return tuple(v for v in values if v)

    def key_hint(self) -> str:
        return f"check the user and password in {self.setting('url')} / {URL_ENV} (or PGPASSWORD, ~/.pgpass)"

    def hints(self) -> dict[int | str, str]:
        return {
            **super().hints(),
            "connection": f"check {self.setting('url')} (or {URL_ENV}) and that PostgreSQL is running and reachable",
            "timeout": f"raise {self.setting('timeout_s')}, add an index on {self.options.get('embedding_column')}, or "
            "check the database load",
        }

    def column(self, key: str) -> str | None:
        value = self.options.get(key)
        if value is None or value is REQUIRED or (isinstance(value, str) and not value.strip()):
            return None
        return str(value).strip()

    # -- connection and checks ----------------------------------------------------------------------
    def _open(self) -> Any:
        """A new connection with the vector type registered (one attempt: callers retry)."""
        try:
            import psycopg
            from pgvector.psycopg import register_vector
        except ImportError as exc:  # pragma: no cover - in requirements.txt
            raise BackendUnavailable(
                f"pgvector needs psycopg and pgvector ({exc}).", hint="pip install -r requirements.txt"
            ) from exc
        try:
            conn = psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=max(1, int(round(self.timeout_s))),
                options=f"-c statement_timeout={int(self.timeout_s * 1000)}",
            )
        except psycopg.OperationalError as exc:
            raise self._connect_failure(exc) from None
        except psycopg.ProgrammingError as exc:  # not a connection string libpq can read
            raise EngineSettingError(
                f"{self.setting('url')} (or {URL_ENV}) is not a PostgreSQL URL: "
                f"{redact(' '.join(str(exc).split()), self.secret_values())}",
                setting=self.setting("url"),
                hint='write it as "postgresql://user@host:5432/db"',
            ) from None
        try:
            register_vector(conn)
        except psycopg.ProgrammingError:
            conn.close()
            raise EngineSettingError(
                f"the database at {self.address} has no vector type (the pgvector extension is not installed in it).",
                setting=self.setting("url"),
                hint="run CREATE EXTENSION vector; in that database (pgvector must be installed on the server), "
                "or point url at the database that holds the table",
            ) from None
        return conn

    def _connect_failure(self, exc: Exception) -> Exception:
        text = redact(" ".join(str(exc).split()), self.secret_values())
        lowered = text.lower()
        if "password authentication failed" in lowered or "no password supplied" in lowered:
            return HostedCallError(
                f"{self.what} refused the credentials: {text}", status=401, hint=self.key_hint()
            )
        if "database" in lowered and "does not exist" in lowered:
            return EngineSettingError(
                f"{self.what}: {text}",
                setting=self.setting("url"),
                hint=f"name an existing database in {self.setting('url')} (or {URL_ENV})",
            )
        if "timeout" in lowered:
            return TransportFailure(text, timed_out=True)
        return TransportFailure(text, connection=True)

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            self._conn = self._open()
        return self._conn

    def _connect(self) -> None:
        with self._conn_lock:
            conn = self.call(self._connection)
            if not self.options.get("sql"):
                self._check_table(conn)

    def _check_table(self, conn: Any) -> None:
        table = str(self.option("table"))
        parts = split_table(table)
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass(%s)::oid", (".".join(f'"{p}"' for p in parts),))
            row = cur.fetchone()
            oid = row[0] if row else None
            if oid is None:
                cur.execute(
                    "SELECT table_schema || '.' || table_name FROM information_schema.tables "
                    "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1 LIMIT 20"
                )
                tables = [r[0] for r in cur.fetchall()]
                raise EngineSettingError(
                    f"the database at {self.address} has no table {table!r} (tables: {', '.join(tables) or 'none'}).",
                    setting=self.setting("table"),
                    hint="set table to one of them, or fill one with: python -m rerank_core pgvector load "
                    "--dataset DIR --url URL --table " + table,
                )
            cur.execute(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                (oid,),
            )
            columns = dict(cur.fetchall())
            cur.execute("SELECT obj_description(%s, 'pg_class')", (oid,))
            comment = cur.fetchone()[0]
        listed = ", ".join(f"{c} {t}" for c, t in columns.items())
        for key in ("id_column", "title_column", "text_column", "embedding_column"):
            name = self.column(key)
            if name is None and key in ("id_column", "embedding_column"):
                self.option(key)  # required: raises
            if name is not None and name not in columns:
                raise EngineSettingError(
                    f"table {table!r} has no column {name!r} (its columns: {listed}).",
                    setting=self.setting(key),
                    hint=f"set {self.setting(key)} to one of its columns",
                )
        emb = str(self.column("embedding_column"))
        kind = columns[emb]
        if not kind.startswith(("vector", "halfvec")):
            raise EngineSettingError(
                f"column {emb!r} of table {table!r} is {kind}, not a pgvector vector.",
                setting=self.setting("embedding_column"),
                hint="name the vector(d) column that holds the embeddings",
            )
        dim = int(kind[kind.index("(") + 1 : -1]) if "(" in kind else None
        model_dim = self.embedder.dimension
        if dim is not None and model_dim is not None and dim != model_dim:
            raise EngineSettingError(
                f"table {table!r} holds {dim}-dimensional vectors, but {self.setting('model')} = "
                f"{self.embedder.model_name!r} gives {model_dim}.",
                setting=self.setting("model"),
                hint="the query embedder must be the model the table's vectors came from",
            )
        recorded = read_comment(comment)
        made_with = recorded.get("model")
        if made_with and not _same_model(str(made_with), self.embedder.model_name):
            raise EngineSettingError(
                f"table {table!r} was filled with embeddings of {made_with!r} (its comment says so), but "
                f"{self.setting('model')} = {self.embedder.model_name!r}.",
                setting=self.setting("model"),
                hint=f'set model = "{made_with}" under {self.section}',
            )

    # -- searching ---------------------------------------------------------------------------------
    def _statement(self, k: int) -> Any:
        from psycopg import sql

        op, _, _ = DISTANCES[self.distance]
        table = sql.Identifier(*split_table(str(self.option("table"))))
        emb = sql.Identifier(str(self.column("embedding_column")))
        title = self.column("title_column")
        text = self.column("text_column")
        return sql.SQL(
            "SELECT {id}, {title}, {text}, {emb} {op} %(query_embedding)s FROM {table} "
            "ORDER BY {emb} {op} %(query_embedding)s LIMIT %(k)s"
        ).format(
            id=sql.Identifier(str(self.column("id_column"))),
            title=sql.Identifier(title) if title else sql.SQL("NULL"),
            text=sql.Identifier(text) if text else sql.SQL("NULL"),
            emb=emb,
            op=sql.SQL(op),
            table=table,
        )

    def _query(self, query: str, k: int) -> list[Hit]:
        import numpy as np

        vector = np.asarray(self.embedder(query), dtype=np.float32)
        params = {"query_embedding": vector, "k": int(k), "query": query}
        custom = self.options.get("sql")

        def once() -> list[Any]:
            import psycopg

            with self._conn_lock:
                conn = self._connection()
                try:
                    with conn.transaction(), conn.cursor() as cur:
                        ef = max(int(self.options.get("ef_search") or 40), int(k))
                        cur.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(min(ef, 1000)),))
                        if self.options.get("probes"):
                            cur.execute(
                                "SELECT set_config('ivfflat.probes', %s, true)",
                                (str(int(self.options["probes"])),),
                            )
                        cur.execute(custom if custom else self._statement(k), params)
                        names = [d.name for d in cur.description or []]
                        return [names, *cur.fetchall()]
                except psycopg.errors.QueryCanceled:
                    raise TransportFailure("statement timeout", timed_out=True) from None
                except psycopg.OperationalError as exc:
                    conn.close()
                    raise TransportFailure(str(exc), connection=True) from None
                except psycopg.Error as exc:
                    raise self._refused(exc) from None

        names, *rows = self.call(once)
        return self._hits(names, rows) if custom else self._table_hits(rows)

    def _table_hits(self, rows: list[Any]) -> list[Hit]:
        _, _, to_score = DISTANCES[self.distance]
        return [
            Hit(
                doc_id=str(doc_id),
                score=to_score(float(value)),
                title=None if self.column("title_column") is None else (title or ""),
                text=None if self.column("text_column") is None else (text or ""),
            )
            for doc_id, title, text, value in rows
        ]

    def _hits(self, names: list[str], rows: list[Any]) -> list[Hit]:
        if "id" not in names or "score" not in names:
            raise EngineSettingError(
                f"{self.setting('sql')} returned the columns {', '.join(names) or 'none'}; it must return id and score.",
                setting=self.setting("sql"),
                hint="alias them: SELECT doc_id AS id, 1 - (embedding <=> %(query_embedding)s) AS score, ...",
            )
        at = {n: i for i, n in enumerate(names)}
        out = []
        for row in rows:
            title = row[at["title"]] if "title" in at else None
            text = row[at["text"]] if "text" in at else None
            out.append(Hit(doc_id=str(row[at["id"]]), score=float(row[at["score"]]), title=title, text=text))
        return out

    def _refused(self, exc: Exception) -> Exception:
        import psycopg

        text = redact(" ".join(str(exc).split()), self.secret_values())
        if self.options.get("sql"):
            return EngineSettingError(
                f"PostgreSQL refused {self.setting('sql')}: {text}",
                setting=self.setting("sql"),
                hint="fix the query; parameters are %(query_embedding)s, %(k)s and %(query)s",
            )
        if isinstance(exc, psycopg.errors.UndefinedTable):
            return EngineSettingError(f"PostgreSQL: {text}", setting=self.setting("table"))
        if isinstance(exc, psycopg.errors.UndefinedColumn):
            for key in ("id_column", "title_column", "text_column", "embedding_column"):
                name = self.column(key)
                if name and f'"{name}"' in text:
                    return EngineSettingError(f"PostgreSQL: {text}", setting=self.setting(key))
        if "dimensions" in text:
            return EngineSettingError(
                f"PostgreSQL: {text}",
                setting=self.setting("model"),
                hint="the query embedder must be the model the table's vectors came from",
            )
        return HostedCallError(f"{self.what} failed: {text}", hint="see the message")

    def close(self) -> None:
        super().close()
        with self._conn_lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _same_model(a: str, b: str) -> bool:
    from rerank_core.encoders import short_model_name

    return a == b or short_model_name(a) == short_model_name(b)


# -- filling a table --------------------------------------------------------------------------------
INDEX_KINDS = ("none", "hnsw", "ivfflat")


def load_table(
    corpus: Any,
    url: str,
    table: str,
    *,
    model: str = MINILM_ID,
    settings: Settings | None = None,
    distance: str = "cosine",
    index: str = "none",
    replace: bool = False,
    batch_size: int = 32,
    progress: Any = None,
) -> dict[str, Any]:
    """Create ``table`` (``id text primary key, title text, text text, embedding vector(d)``) and fill
    it with ``corpus`` embedded by ``model`` exactly as the ``dense`` first stage embeds it (the same
    encoder code, normalised ``title + text``), so a search of the table equals ``dense``.

    ``index``: "none" (exact scans, the default), "hnsw" or "ivfflat" for ``distance``'s operator
    class. The table's comment records the model, so the ``pgvector`` first stage can refuse a
    different query embedder. An existing table is an error unless ``replace`` (then it is dropped).
    Returns a summary (documents, dimension, seconds, the settings to use).
    """
    import time

    import psycopg
    from pgvector.psycopg import register_vector
    from psycopg import sql

    from rerank_core.retrieval.dense import DenseRetriever

    if distance not in DISTANCES:
        raise ConfigError(f"unknown distance {distance!r}", hint=f"use one of: {', '.join(DISTANCES)}")
    if index not in INDEX_KINDS:
        raise ConfigError(f"unknown index kind {index!r}", hint=f"use one of: {', '.join(INDEX_KINDS)}")
    parts = split_table(table)
    dsn = libpq_url(url)
    secrets = (url_password(dsn),)
    t0 = time.perf_counter()
    try:
        conn = psycopg.connect(dsn, autocommit=True)
    except psycopg.OperationalError as exc:
        raise HostedCallError(
            f"cannot connect to the database: {redact(' '.join(str(exc).split()), secrets)}",
            hint="check --url (or RERANK_PGVECTOR_URL) and that PostgreSQL is running",
        ) from None
    with conn:
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.Error as exc:
            raise BackendUnavailable(
                f"cannot enable the pgvector extension: {redact(str(exc).strip(), secrets)}",
                hint="install pgvector on the server and run CREATE EXTENSION vector as a superuser once",
            ) from None
        register_vector(conn)
        exists = conn.execute("SELECT to_regclass(%s)", (".".join(f'"{p}"' for p in parts),)).fetchone()
        if exists and exists[0] is not None:
            if not replace:
                raise ConfigError(
                    f"table {table!r} already exists.",
                    hint="pass --replace to drop and refill it, or choose another --table",
                )
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(*parts)))

        dense = DenseRetriever(settings=settings, model=model, batch_size=batch_size)
        dense.build(corpus, progress)
        embeddings = dense.embeddings
        assert embeddings is not None
        dim = int(embeddings.shape[1])
        encode_s = dense.build_s

        ident = sql.Identifier(*parts)
        with conn.transaction():
            conn.execute(
                sql.SQL(
                    "CREATE TABLE {} (id text PRIMARY KEY, title text, text text, embedding vector({}))"
                ).format(ident, sql.Literal(dim))
            )
            with conn.cursor() as cur:
                copy_sql = sql.SQL(
                    "COPY {} (id, title, text, embedding) FROM STDIN WITH (FORMAT BINARY)"
                ).format(ident)
                with cur.copy(copy_sql) as copy:
                    copy.set_types(["text", "text", "text", "vector"])
                    for doc, vector in zip(corpus, embeddings, strict=True):
                        copy.write_row([doc.id, doc.title, doc.text, vector])
            comment = table_comment(
                model,
                normalize=True,
                distance=distance,
                documents=len(corpus),
                fingerprint=corpus.fingerprint,
            )
            conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(ident, sql.Literal(comment)))
        if index != "none":
            _, opclass, _ = DISTANCES[distance]
            using = sql.SQL(index)
            extra: sql.Composable = sql.SQL("")
            if index == "ivfflat":
                lists = max(1, int(len(corpus) ** 0.5))
                extra = sql.SQL(" WITH (lists = {})").format(sql.Literal(lists))
            conn.execute(
                sql.SQL("CREATE INDEX ON {} USING {} (embedding {}){}").format(
                    ident, using, sql.SQL(opclass), extra
                )
            )
        conn.execute(sql.SQL("ANALYZE {}").format(ident))
    return {
        "table": ".".join(parts),
        "documents": len(corpus),
        "dimension": dim,
        "model": model,
        "distance": distance,
        "index": index,
        "encode_s": round(encode_s, 2),
        "total_s": round(time.perf_counter() - t0, 2),
    }
