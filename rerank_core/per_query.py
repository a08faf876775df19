"""Which queries a reranker won or lost against the first stage, and why relevant documents are missing.

Pure functions over runs and qrels (``{query: {doc: score}}`` and ``{query: {doc: grade}}``, the
shapes of :mod:`rerank_core.metrics`), so the evaluate report, the Benchmark page and the tests
call the same code. Orders are TREC order (:func:`rerank_core.metrics.rank_documents`), the order
every metric uses.

Per query and method:

- the measure (nDCG@10 by default) of the first stage and of the method, and their difference;
  a *win* is a difference above :data:`TIE_TOLERANCE`, a *loss* below minus it, else a *tie*;
- attribution of every judged relevant document (grade > 0): ``found`` when it is in the
  method's top ``k``; otherwise ``retrieval`` when it is not among the first stage's top ``depth``
  candidates (the reranker never saw it: retrieval's fault), else ``reranker`` (it was handed to
  the reranker, which ranked it below ``k``). The three always add up to the query's relevant
  documents.

:func:`per_tag` gives the same figures for the queries carrying each tag.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rerank_core.errors import CorpusFormatError
from rerank_core.metrics import parse_measure, rank_documents

#: a difference smaller than this (in absolute value) is a tie
TIE_TOLERANCE = 1e-9
#: the attribution classes, in the order reports show them
ATTRIBUTION = ("found", "retrieval", "reranker")
ATTRIBUTION_TEXT = {
    "found": "in the top k",
    "retrieval": "not retrieved at this depth (the first stage's fault)",
    "reranker": "retrieved, but ranked below k (the reranker's fault)",
}

Tags = Mapping[str, Sequence[str]]


@dataclass(frozen=True)
class QueryOutcome:
    """One query: the first stage's and the method's value, and where the relevant documents went."""

    query_id: str
    first_stage: float
    method: float
    found: tuple[str, ...] = ()
    retrieval: tuple[str, ...] = ()
    reranker: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    @property
    def diff(self) -> float:
        return self.method - self.first_stage

    @property
    def outcome(self) -> str:
        """``win``, ``loss`` or ``tie`` (:data:`TIE_TOLERANCE`)."""
        if self.diff > TIE_TOLERANCE:
            return "win"
        if self.diff < -TIE_TOLERANCE:
            return "loss"
        return "tie"

    @property
    def relevant(self) -> int:
        return len(self.found) + len(self.retrieval) + len(self.reranker)

    def to_json(self) -> dict[str, Any]:
        return {
            "query": self.query_id,
            "first_stage": self.first_stage,
            "method": self.method,
            "diff": self.diff,
            "outcome": self.outcome,
            "relevant": self.relevant,
            "found": len(self.found),
            "retrieval": len(self.retrieval),
            "reranker": len(self.reranker),
            "missed_by_retrieval": list(self.retrieval),
            "missed_by_reranker": list(self.reranker),
            "tags": list(self.tags),
        }


@dataclass(frozen=True)
class WinLoss:
    """A method against the first stage over a set of queries.

    ``queries`` are sorted by difference, largest win first (ties by query id), so the head shows
    where the method helped most and the tail where it hurt most.
    """

    method: str
    measure: str
    k: int
    depth: int
    queries: tuple[QueryOutcome, ...] = field(default=())

    def _count(self, outcome: str) -> int:
        return sum(1 for q in self.queries if q.outcome == outcome)

    @property
    def wins(self) -> int:
        return self._count("win")

    @property
    def losses(self) -> int:
        return self._count("loss")

    @property
    def ties(self) -> int:
        return self._count("tie")

    @property
    def mean_diff(self) -> float | None:
        return sum(q.diff for q in self.queries) / len(self.queries) if self.queries else None

    @property
    def attribution(self) -> dict[str, int]:
        """Relevant documents per attribution class, summed over the queries."""
        return {
            "found": sum(len(q.found) for q in self.queries),
            "retrieval": sum(len(q.retrieval) for q in self.queries),
            "reranker": sum(len(q.reranker) for q in self.queries),
        }

    @property
    def worst(self) -> list[QueryOutcome]:
        """The losses, worst first."""
        return [q for q in reversed(self.queries) if q.outcome == "loss"]

    @property
    def best(self) -> list[QueryOutcome]:
        """The wins, best first."""
        return [q for q in self.queries if q.outcome == "win"]

    def summary_json(self) -> dict[str, Any]:
        return {
            "queries": len(self.queries),
            "wins": self.wins,
            "losses": self.losses,
            "ties": self.ties,
            "mean_diff": self.mean_diff,
            "attribution": self.attribution,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "measure": self.measure,
            "k": self.k,
            "depth": self.depth,
            **self.summary_json(),
            "rows": [q.to_json() for q in self.queries],
        }


def attribute(
    method_ranking: Sequence[str],
    first_stage_ranking: Sequence[str],
    judgements: Mapping[str, int],
    *,
    k: int = 10,
    depth: int | None = None,
) -> dict[str, tuple[str, ...]]:
    """Where each judged relevant document (grade > 0) of one query went.

    ``found``: in ``method_ranking[:k]``; ``retrieval``: not in ``first_stage_ranking[:depth]``
    (``depth`` None: the whole first-stage list); ``reranker``: among the candidates but below
    ``k`` in the method's order. Documents are listed in doc id order.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    top = set(method_ranking[:k])
    candidates = set(first_stage_ranking if depth is None else first_stage_ranking[:depth])
    out: dict[str, list[str]] = {name: [] for name in ATTRIBUTION}
    for doc_id in sorted(d for d, g in judgements.items() if g > 0):
        if doc_id in top:
            out["found"].append(doc_id)
        elif doc_id not in candidates:
            out["retrieval"].append(doc_id)
        else:
            out["reranker"].append(doc_id)
    return {name: tuple(docs) for name, docs in out.items()}


def _sorted(outcomes: Iterable[QueryOutcome]) -> tuple[QueryOutcome, ...]:
    return tuple(sorted(outcomes, key=lambda q: (-q.diff, q.query_id)))


def wins_and_losses(
    first_stage_run: Mapping[str, Mapping[str, float]],
    method_run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    depth: int,
    method: str = "",
    measure: str = "nDCG@10",
    k: int = 10,
    tags: Tags | None = None,
) -> WinLoss:
    """``method_run`` against ``first_stage_run`` on every judged query of ``qrels``.

    ``measure`` is computed from both runs (a query missing from a run scores 0, as in
    :func:`rerank_core.metrics.evaluate`); attribution uses the method's top ``k`` and the first
    stage's top ``depth`` (the candidates the reranker was given). ``tags[query]`` are copied
    onto the outcomes.
    """
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    m = parse_measure(measure)
    outcomes = []
    for qid, judgements in qrels.items():
        if not judgements:
            continue
        fs_ranking = rank_documents(first_stage_run.get(qid) or {})
        ranking = rank_documents(method_run.get(qid) or {})
        parts = attribute(ranking, fs_ranking, judgements, k=k, depth=depth)
        outcomes.append(
            QueryOutcome(
                query_id=qid,
                first_stage=m.compute(fs_ranking, judgements),
                method=m.compute(ranking, judgements),
                found=parts["found"],
                retrieval=parts["retrieval"],
                reranker=parts["reranker"],
                tags=tuple((tags or {}).get(qid, ())),
            )
        )
    return WinLoss(method=method, measure=str(m), k=k, depth=depth, queries=_sorted(outcomes))


def per_tag(result: WinLoss, tags: Tags | None = None) -> dict[str, WinLoss]:
    """The same figures for the queries carrying each tag (tag order: alphabetical).

    Tags come from ``tags`` when given, else from the outcomes themselves. A query with several
    tags counts under each; untagged queries are under no tag.
    """
    groups: dict[str, list[QueryOutcome]] = {}
    for q in result.queries:
        for tag in (tags or {}).get(q.query_id, ()) if tags is not None else q.tags:
            groups.setdefault(str(tag), []).append(q)
    return {
        tag: WinLoss(result.method, result.measure, result.k, result.depth, _sorted(groups[tag]))
        for tag in sorted(groups)
    }


# ---------------------------------------------------------------------------------------------
# query tags from a file


def _split_tags(value: Any) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else str(value).replace(";", ",").split(",")
    return list(dict.fromkeys(str(t).strip() for t in items if str(t).strip()))


def parse_tags(text: str, name: str = "tags") -> dict[str, list[str]]:
    """Query tags from text: a queries JSONL (``{"_id", "tags": [...]}`` or ``metadata.tags``), or
    a TSV/CSV with a query-id column and a tags column (tags separated by ``,`` or ``;``).

    Raises :class:`~rerank_core.errors.CorpusFormatError` naming the line of a bad row.
    """
    stripped = text.lstrip("\ufeff").lstrip()
    out: dict[str, list[str]] = {}
    if stripped.startswith("{"):
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise CorpusFormatError(
                    f"not a JSON object ({exc})", file=name, line=number, hint="one JSON object per line"
                ) from None
            if not isinstance(row, dict):
                raise CorpusFormatError("not a JSON object", file=name, line=number)
            qid = row.get("_id", row.get("query-id", row.get("qid")))
            if qid is None:
                raise CorpusFormatError(
                    "no query id", file=name, line=number, hint='give each row an "_id" (as BEIR does)'
                )
            meta = row["metadata"] if isinstance(row.get("metadata"), dict) else {}
            found = _split_tags(row.get("tags", meta.get("tags")))
            if found:
                out[str(qid)] = found
        return out
    dialect = "excel-tab" if "\t" in text.split("\n", 1)[0] else "excel"
    rows = list(csv.reader(io.StringIO(text), dialect=dialect))
    if not rows:
        return out
    header = [h.strip().lower() for h in rows[0]]
    id_names, tag_names = ("query-id", "query_id", "qid", "_id", "id"), ("tags", "tag")
    if any(h in id_names for h in header) and any(h in tag_names for h in header):
        qcol = next(i for i, h in enumerate(header) if h in id_names)
        tcol = next(i for i, h in enumerate(header) if h in tag_names)
        body = enumerate(rows[1:], start=2)
    else:
        qcol, tcol = 0, 1
        body = enumerate(rows, start=1)
    for number, row in body:
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(qcol, tcol):
            raise CorpusFormatError(
                f"expected a query id and its tags, got {len(row)} column(s)",
                file=name,
                line=number,
                hint="write one row per query: query-id<TAB>tag1,tag2",
            )
        found = _split_tags(row[tcol])
        if found:
            out[row[qcol].strip()] = found
    return out


def read_tags(path: str | Path) -> dict[str, list[str]]:
    """Query tags from a file (see :func:`parse_tags`)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CorpusFormatError(f"{p} does not exist", hint="check the path of the tags file") from None
    except UnicodeDecodeError as exc:
        raise CorpusFormatError(f"not UTF-8 text ({exc.reason})", file=str(p)) from None
    return parse_tags(text, str(p))
