"""One reader and one writer per format of judgements, queries, runs and BEIR datasets.

Every reader takes the same kinds of source, so an upload, a file on disk and a test's string all
go through the same code:

- ``bytes`` (or ``bytearray``/``memoryview``): the content, e.g. an upload's bytes;
- a binary or text stream (anything with ``read()``: an open file, ``io.BytesIO``, ``io.StringIO``,
  Streamlit's ``UploadedFile``); its ``name`` attribute, if any, is the name shown in messages;
- a path (``pathlib.Path``, any ``os.PathLike``, or a ``str``, which is always a path; give text as
  ``io.StringIO(text)`` or ``text.encode()``).

``name`` overrides the name shown in messages (and, for auto-detection, the file extension used).
Nothing is written to disk: a zip is read in memory, member names appear in messages as
``archive.zip:folder/member``.

Readers return the data plus a list of :class:`~rerank_core.corpus.LoadWarning` and raise
:class:`~rerank_core.errors.CorpusFormatError` naming the file and the line for what cannot be
read. Two rules decide which is which:

- **Judgements and runs are read strictly.** A line that does not parse (wrong column count, a
  grade that is not an integer, a bad time) stops the read with an error, so an import never
  writes part of a file. A pair judged twice with *different* grades is a warning: in a qrels file
  the first grade is kept; in a judgements CSV (a log, possibly with history) the later row is the
  current one, as the label store would have it. The same pair twice with the same grade is fine.
- **Queries are read like documents** (see :mod:`rerank_core.corpus`): a record without an id or
  text, an empty or duplicate query, or a line that is not JSON is skipped with a warning; a whole
  file that cannot be read (not UTF-8, empty, no id or text column) is an error.

Formats
-------
Qrels (:func:`read_qrels`, :func:`write_qrels`):

- ``trec``: ``qid 0 docid grade`` per line (whitespace-separated, the second column is ignored);
- ``beir``: tab-separated ``query-id  corpus-id  score`` with that header (ids may hold spaces);
- ``csv``: a header with ``query_id,doc_id,grade`` and optionally ``judge,created_at,rationale``
  (the label store's export); an empty grade or ``skip`` is a skipped pair.

Queries (:func:`read_queries`, :func:`write_queries_jsonl`): BEIR ``queries.jsonl``
(``{"_id", "text"}``), TSV ``id<TAB>text`` (a header row naming the columns is optional), or CSV
with an id and a text column. An optional ``tags`` field or column (a JSON list, or a string
separated by ``;`` or ``,``) gives each query its tags.

Runs (:func:`read_run`, :func:`write_run`): TREC ``qid Q0 docid rank score run_name``, or JSON lines
``{"query_id", "query"?, "doc_id", "score", "rank"?, "title"?, "text"?}`` (read only).

BEIR datasets (:func:`read_beir`): a folder, or a zip (path, bytes or stream) holding
``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``, possibly inside one top folder.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from rerank_core.corpus import (
    BAD_ROW,
    DEFAULT_MAX_BYTES,
    NO_TEXT_FIELD,
    NOT_AN_OBJECT,
    LoadReport,
    LoadWarning,
    _check_size,
    _Collector,
    _csv_records,
    _decode,
    _ext,
    _guess,
    _json_lines,
    _json_records,
    _pick,
    _stem,
    _zip_corpus,
    _ZipReader,
)
from rerank_core.errors import CorpusFormatError
from rerank_core.metrics import rank_documents
from rerank_core.types import Corpus, Dataset

__all__ = [
    "BEIR_HEADER",
    "JUDGEMENT_CSV_COLUMNS",
    "PREFERRED_SPLITS",
    "QRELS_FORMATS",
    "QUERIES_FORMATS",
    "RUN_FORMATS",
    "BeirLayout",
    "BeirRead",
    "JudgementRow",
    "QrelsRead",
    "QueriesRead",
    "RunRead",
    "inspect_beir",
    "parse_tags",
    "pick_split",
    "read_beir",
    "read_qrels",
    "read_queries",
    "read_run",
    "write_judgements_csv",
    "write_qrels",
    "write_queries_jsonl",
    "write_run",
]

QRELS_FORMATS = ("trec", "beir", "csv")
QUERIES_FORMATS = ("jsonl", "tsv", "csv")
BEIR_HEADER = ("query-id", "corpus-id", "score")
JUDGEMENT_CSV_COLUMNS = ("query_id", "doc_id", "grade", "judge", "created_at", "rationale")
#: the qrels split read from a BEIR dataset when none is chosen, in order of preference
PREFERRED_SPLITS = ("test", "dev", "validation", "train")

_SKIP_WORDS = frozenset({"", "skip", "skipped", "none", "null"})
_QUERY_ID_FIELDS = ("_id", "id", "query_id", "qid", "query-id")
_QUERY_TEXT_FIELDS = ("text", "query", "query_text")
_TAGS_FIELD = "tags"
DUPLICATE_QREL = "duplicate qrel"
DUPLICATE_JUDGEMENT = "duplicate judgement"


class _Named(Protocol):
    def read(self, size: int = -1, /) -> bytes | str: ...


Source = bytes | bytearray | memoryview | str | os.PathLike[str] | _Named


# --------------------------------------------------------------------------------------------------
# sources: one helper turns every kind of source into (name, bytes-or-text)
# --------------------------------------------------------------------------------------------------
def _is_path(source: object) -> bool:
    return isinstance(source, str | os.PathLike)


def _source_name(source: object, name: str | None, default: str) -> str:
    if name:
        return str(name)
    if _is_path(source):
        return str(source)
    stream_name = getattr(source, "name", None)
    if isinstance(stream_name, str) and stream_name:
        return stream_name
    return default


def _raw(source: Source, name: str | None, default: str, max_bytes: int) -> tuple[str, bytes | str]:
    """``(name shown, content)`` of any source; content is str only for a text stream."""
    shown = _source_name(source, name, default)
    if isinstance(source, bytes | bytearray | memoryview):
        data: bytes | str = bytes(source)
    elif _is_path(source):
        if isinstance(source, str) and "\n" in source:
            raise ValueError("a str is read as a path; give text as io.StringIO(text) or text.encode()")
        path = Path(source)  # type: ignore[arg-type]
        if not path.exists():
            raise CorpusFormatError("does not exist.", file=shown, hint="check the path")
        if not path.is_file():
            raise CorpusFormatError("is a folder, not a file.", file=shown, hint="give the file itself")
        _check_size(path.stat().st_size, shown, max_bytes)
        data = path.read_bytes()
    else:
        read = getattr(source, "read", None)
        if read is None:
            raise TypeError(
                f"cannot read {type(source).__name__}: give bytes, a binary or text stream, or a path"
            )
        data = read(max_bytes + 1)
        if not isinstance(data, bytes | str):
            raise TypeError(f"{type(source).__name__}.read() gave {type(data).__name__}, not bytes or str")
    _check_size(len(data), shown, max_bytes)
    return shown, data


def _text(
    source: Source,
    name: str | None,
    default: str,
    *,
    what: str,
    max_bytes: int = DEFAULT_MAX_BYTES,
    encoding: str | None = None,
) -> tuple[str, str]:
    """``(name shown, text)``: bytes decoded as UTF-8 (see corpus._decode), a text stream as is."""
    shown, data = _raw(source, name, default, max_bytes)
    return shown, _decoded(data, shown, what=what, encoding=encoding)


def _decoded(data: bytes | str, shown: str, *, what: str, encoding: str | None = None) -> str:
    empty_hint = f"choose a file that holds {what}"
    if isinstance(data, str):
        if not data.strip():
            raise CorpusFormatError("is empty.", file=shown, hint=empty_hint)
        return data.removeprefix("\ufeff")
    return _decode(
        data,
        shown,
        encoding,
        empty_hint=empty_hint,
        binary_hint=f"choose the file that holds the {what}, saved as UTF-8 text",
    )


def _lines(text: str) -> Iterable[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers (split on newlines only, ``\\r`` dropped)."""
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if line.strip():
            yield number, line


def _columns(text: str, name: str, layout: str, what: str) -> Iterable[tuple[int, list[str]]]:
    """Non-blank lines split on whitespace, each with exactly the columns ``layout`` names."""
    n = len(layout.split())
    for number, line in _lines(text):
        cols = line.split()
        if len(cols) != n:
            raise CorpusFormatError(
                f"expected {n} columns '{layout}', found {len(cols)}",
                file=name,
                line=number,
                hint=f"each line of {what} has exactly {n} whitespace-separated columns",
            )
        yield number, cols


def _first_line(text: str) -> str:
    return next((line for _, line in _lines(text)), "")


# --------------------------------------------------------------------------------------------------
# qrels and judgement CSVs
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class JudgementRow:
    """One judgement as a file states it. ``grade`` None = skipped; ``judge`` None = not stated.

    ``created_at`` is timezone-aware (a time without a zone is read as UTC); ``line`` is where the
    row is in its file."""

    query_id: str
    doc_id: str
    grade: int | None
    judge: str | None = None
    created_at: datetime | None = None
    rationale: str | None = None
    line: int | None = None


@dataclass
class QrelsRead:
    """What :func:`read_qrels` found.

    ``qrels[query_id][doc_id] = grade`` (skips left out; several judges of a CSV merged as the label
    store merges them: the newest graded row wins). ``rows`` are the judgements one by one: every
    row of a CSV (judge, skips, time and rationale included), one row per pair of a TREC or BEIR
    file (no judge)."""

    qrels: dict[str, dict[str, int]]
    rows: list[JudgementRow]
    fmt: str
    name: str
    warnings: list[LoadWarning] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(len(d) for d in self.qrels.values())

    def import_rows(
        self, judge: str | None = None, default_judge: str | None = None
    ) -> list[tuple[str, str, int | None, str, datetime | None, str | None]]:
        """Rows for :meth:`JudgementStore.import_judgements`: ``(query_id, doc_id, grade, judge,
        created_at, rationale)``. ``judge`` replaces every row's judge; rows without one get
        ``default_judge`` (the store's ``"import"`` when None)."""
        if default_judge is None:
            from rerank_core.judgements import IMPORT_JUDGE

            default_judge = IMPORT_JUDGE
        return [
            (r.query_id, r.doc_id, r.grade, judge or r.judge or default_judge, r.created_at, r.rationale)
            for r in self.rows
        ]


def _parse_grade(text: str, file: str, line: int, *, skip_ok: bool = False) -> int:
    value = text.strip()
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number != int(number):
        raise CorpusFormatError(
            f"relevance grade {value!r} is not an integer",
            file=file,
            line=line,
            hint="grades are integers such as 0, 1, 2"
            + ("; leave it empty (or write skip) for a skipped pair" if skip_ok else ""),
        )
    return int(number)


def _looks_int(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return math.isfinite(value) and value == int(value)


def _parse_time(text: str, file: str, line: int) -> datetime | None:
    value = text.strip()
    if not value:
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CorpusFormatError(
            f"created_at {value!r} is not an ISO 8601 time",
            file=file,
            line=line,
            hint="e.g. 2024-05-01T12:00:00+00:00",
        ) from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _detect_qrels_format(text: str, name: str) -> str:
    if _ext(name) == ".csv":
        return "csv"
    first = _first_line(text)
    if "," in first and "query_id" in first.lower():
        return "csv"
    if len(first.split("\t")) == 3:
        return "beir"
    return "trec"


def _pairs_to_rows(
    pairs: Iterable[tuple[int, str, str, int]], name: str, report: LoadReport
) -> list[JudgementRow]:
    """One row per (query, doc): the first grade kept, a different later grade warned about."""
    first: dict[tuple[str, str], tuple[int, int]] = {}
    rows: list[JudgementRow] = []
    for line, qid, doc_id, grade in pairs:
        seen = first.get((qid, doc_id))
        if seen is not None:
            if seen[1] != grade:
                report.skip(
                    name,
                    line,
                    DUPLICATE_QREL,
                    f"({qid}, {doc_id}) was graded {seen[1]} on line {seen[0]} and {grade} here; "
                    "the first is kept",
                )
            continue
        first[(qid, doc_id)] = (line, grade)
        rows.append(JudgementRow(qid, doc_id, grade, line=line))
    return rows


def _trec_pairs(text: str, name: str) -> Iterable[tuple[int, str, str, int]]:
    for number, cols in _columns(text, name, "qid 0 docid grade", "TREC qrels"):
        qid, _, doc_id, grade = cols
        yield number, qid, doc_id, _parse_grade(grade, name, number)


def _beir_pairs(text: str, name: str) -> Iterable[tuple[int, str, str, int]]:
    first = True
    for number, line in _lines(text):
        cols = [c.strip() for c in line.split("\t")]
        if first:
            first = False
            if [c.lower() for c in cols] == list(BEIR_HEADER) or (len(cols) == 3 and not _looks_int(cols[2])):
                continue  # the header
        if len(cols) != 3 or not cols[0] or not cols[1]:
            raise CorpusFormatError(
                f"expected 3 tab-separated columns 'query-id, corpus-id, score', found {len(cols)}",
                file=name,
                line=number,
                hint="BEIR qrels are tab-separated with the header 'query-id\\tcorpus-id\\tscore'",
            )
        qid, doc_id, grade = cols
        yield number, qid, doc_id, _parse_grade(grade, name, number)


def _csv_judgement_rows(text: str, name: str, report: LoadReport) -> list[JudgementRow]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        header = []
    except csv.Error as exc:
        raise CorpusFormatError(f"cannot be read as CSV: {exc}", file=name, line=1) from None
    missing = [c for c in JUDGEMENT_CSV_COLUMNS[:3] if c not in header]
    if missing:
        raise CorpusFormatError(
            f"the header has no column {', '.join(missing)} (found: {', '.join(header) or 'nothing'})",
            file=name,
            line=1,
            hint="the first row must name the columns query_id,doc_id,grade[,judge,created_at,rationale]",
        )
    col = {c: header.index(c) for c in JUDGEMENT_CSV_COLUMNS if c in header}
    rows: list[JudgementRow] = []
    current: dict[tuple[str, str, str | None], tuple[int, int | None]] = {}
    for line, fields in _csv_records(reader, name):
        if len(fields) != len(header):
            raise CorpusFormatError(
                f"row has {len(fields)} fields but the header has {len(header)}",
                file=name,
                line=line,
                hint="quote fields that contain commas or line breaks",
            )

        def get(column: str, fields: list[str] = fields) -> str:
            return fields[col[column]] if column in col else ""

        qid, doc_id = get("query_id").strip(), get("doc_id").strip()
        if not qid or not doc_id:
            raise CorpusFormatError("query_id and doc_id must not be empty", file=name, line=line)
        grade_text = get("grade")
        grade = (
            None
            if grade_text.strip().lower() in _SKIP_WORDS
            else _parse_grade(grade_text, name, line, skip_ok=True)
        )
        judge = get("judge").strip() or None
        row = JudgementRow(
            qid,
            doc_id,
            grade,
            judge=judge,
            created_at=_parse_time(get("created_at"), name, line),
            rationale=get("rationale") or None,
            line=line,
        )
        key = (qid, doc_id, judge)
        if key in current and current[key][1] != grade:
            who = f" by {judge!r}" if judge else ""
            report.warn(
                name,
                line,
                f"({qid}, {doc_id}){who} was graded {_shown(current[key][1])} on line {current[key][0]} "
                f"and {_shown(grade)} here; the later row is the current one",
                reason=DUPLICATE_JUDGEMENT,
            )
        current[key] = (line, grade)
        rows.append(row)
    return rows


def _shown(grade: int | None) -> str:
    return "skip" if grade is None else str(grade)


def _merged_qrels(rows: Iterable[JudgementRow]) -> dict[str, dict[str, int]]:
    """query -> doc -> grade from rows in file order: per judge the later row; across judges the
    later grade; a skip never hides a grade (as the label store merges judges)."""
    latest: dict[tuple[str, str, str | None], int | None] = {}
    for r in rows:
        latest.pop((r.query_id, r.doc_id, r.judge), None)  # re-insert: the dict keeps file order
        latest[(r.query_id, r.doc_id, r.judge)] = r.grade
    out: dict[str, dict[str, int]] = {}
    for (qid, doc_id, _), grade in latest.items():
        if grade is not None:
            out.setdefault(qid, {})[doc_id] = grade
    return out


def _parse_qrels(text: str, name: str, fmt: str, report: LoadReport) -> tuple[str, list[JudgementRow]]:
    if fmt == "auto":
        fmt = _detect_qrels_format(text, name)
    if fmt == "trec":
        return fmt, _pairs_to_rows(_trec_pairs(text, name), name, report)
    if fmt == "beir":
        return fmt, _pairs_to_rows(_beir_pairs(text, name), name, report)
    if fmt == "csv":
        return fmt, _csv_judgement_rows(text, name, report)
    raise CorpusFormatError(
        f"unknown qrels format {fmt!r}", file=name, hint=f"use one of: auto, {', '.join(QRELS_FORMATS)}"
    )


def read_qrels(
    source: Source, *, name: str | None = None, fmt: str = "auto", max_bytes: int = DEFAULT_MAX_BYTES
) -> QrelsRead:
    """Read TREC qrels, BEIR qrels TSV or a judgements CSV (``fmt`` ``"auto"`` tells them apart:
    ``*.csv`` or a ``query_id,...`` header is CSV, 3 tab-separated columns BEIR, anything else TREC).

    Raises :class:`CorpusFormatError` with the file and line of what cannot be read, and when the
    file holds no judgement at all."""
    shown, text = _text(source, name, "qrels", what="judgements", max_bytes=max_bytes)
    report = LoadReport(documents=[], files=[shown])
    used, rows = _parse_qrels(text, shown, fmt, report)
    if not rows:
        raise CorpusFormatError(
            "holds no judgements.", file=shown, hint="check that this is a qrels or judgements file"
        )
    qrels = _merged_qrels(rows) if used == "csv" else _pairs_qrels(rows)
    return QrelsRead(qrels=qrels, rows=rows, fmt=used, name=shown, warnings=report.finish().warnings)


def _pairs_qrels(rows: Iterable[JudgementRow]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        if r.grade is not None:
            out.setdefault(r.query_id, {})[r.doc_id] = r.grade
    return out


def _check_token(value: str, what: str, file: str | None = None) -> str:
    value = str(value)
    if not value or any(ch.isspace() for ch in value):
        raise CorpusFormatError(
            f"{what} {value!r} is empty or contains whitespace, which the whitespace-separated TREC "
            "format cannot hold",
            file=file,
            hint=f"rename the {what} (for example replace spaces with '_') before writing TREC files",
        )
    return value


def _check_tsv_field(value: str, what: str, file: str | None = None) -> str:
    if not value or "\t" in value or "\n" in value or "\r" in value:
        raise CorpusFormatError(
            f"{what} {value!r} is empty or contains a tab or line break", file=file, hint=f"rename the {what}"
        )
    return value


def write_qrels(fmt: str, qrels: Mapping[str, Mapping[str, int]], *, name: str | None = None) -> str:
    """Qrels as text in ``fmt`` (``trec``, ``beir`` or ``csv``), queries and documents in the given
    order. ``name`` is the file named in an error (an id the format cannot hold)."""
    if fmt == "csv":
        return write_judgements_csv(
            JudgementRow(str(q), str(d), int(g)) for q, docs in qrels.items() for d, g in docs.items()
        )
    lines: list[str] = []
    if fmt == "beir":
        lines.append("\t".join(BEIR_HEADER) + "\n")
        for qid, judged in qrels.items():
            for doc_id, grade in judged.items():
                _check_tsv_field(qid, "query id", name)
                _check_tsv_field(doc_id, "document id", name)
                lines.append(f"{qid}\t{doc_id}\t{int(grade)}\n")
    elif fmt == "trec":
        for qid, judged in qrels.items():
            _check_token(qid, "query id", name)
            for doc_id, grade in judged.items():
                _check_token(doc_id, "document id", name)
                lines.append(f"{qid} 0 {doc_id} {int(grade)}\n")
    else:
        raise ValueError(f"unknown qrels format {fmt!r}: use one of {', '.join(QRELS_FORMATS)}")
    return "".join(lines)


class _JudgementLike(Protocol):
    @property
    def query_id(self) -> str: ...
    @property
    def doc_id(self) -> str: ...
    @property
    def grade(self) -> int | None: ...
    @property
    def judge(self) -> str | None: ...
    @property
    def created_at(self) -> datetime | None: ...


def write_judgements_csv(judgements: Iterable[_JudgementLike]) -> str:
    """Judgements as CSV text with :data:`JUDGEMENT_CSV_COLUMNS` (an empty grade is a skip), as
    :func:`read_qrels` reads them back. Takes the store's ``Judgement`` objects or
    :class:`JudgementRow`."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(JUDGEMENT_CSV_COLUMNS)
    for j in judgements:
        created = j.created_at
        writer.writerow(
            [
                j.query_id,
                j.doc_id,
                "" if j.grade is None else j.grade,
                j.judge or "",
                created.isoformat() if created is not None else "",
                getattr(j, "rationale", None) or "",
            ]
        )
    return buf.getvalue()


# --------------------------------------------------------------------------------------------------
# queries
# --------------------------------------------------------------------------------------------------
@dataclass
class QueriesRead:
    """What :func:`read_queries` found: ``queries`` id -> text in file order, ``tags`` id -> tags
    (only queries that have some)."""

    queries: dict[str, str]
    tags: dict[str, tuple[str, ...]]
    fmt: str
    name: str
    warnings: list[LoadWarning] = field(default_factory=list)
    skipped: int = 0


def parse_tags(value: object) -> tuple[str, ...]:
    """Tags from a JSON list or a string separated by ``;`` (or, without any ``;``, by ``,``):
    stripped, empty ones dropped, each once in first-seen order."""
    if value is None:
        return ()
    if isinstance(value, str):
        parts: Iterable[object] = value.split(";") if ";" in value else value.split(",")
    elif isinstance(value, list | tuple):
        parts = value
    else:
        raise ValueError(f"tags must be a list or a string, not {type(value).__name__}")
    out: list[str] = []
    for part in parts:
        if isinstance(part, dict | list | tuple) or part is None:
            raise ValueError(f"a tag must be a string, not {type(part).__name__}")
        tag = str(part).strip()
        if tag and tag not in out:
            out.append(tag)
    return tuple(out)


class _QueryCollector:
    """Queries one by one, each checked as a corpus record is (``corpus._Collector``: an id, a
    non-empty text, the first of a duplicated id kept), bad ones skipped with a warning in
    ``report``; plus each query's tags."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.report = LoadReport(documents=[], files=[name])
        self._records = _Collector(self.report, name)
        self.queries: dict[str, str] = {}
        self.tags: dict[str, tuple[str, ...]] = {}

    def add(self, line: int | None, qid: Any, text: Any, tags: Any = None) -> None:
        before = len(self.report.documents)
        self._records.add(line, qid, text, None)
        if len(self.report.documents) == before:
            return  # skipped, with a warning
        query = self.report.documents[-1]
        self.queries[query.id] = query.text.strip()
        try:
            parsed = parse_tags(tags)
        except ValueError as exc:
            self.report.warn(
                self.name, line, f"the tags of query {query.id!r} were not read: {exc}", reason="bad tags"
            )
            parsed = ()
        if parsed:
            self.tags[query.id] = parsed


def _jsonl_queries(text: str, name: str, collect: _QueryCollector) -> None:
    for number, rec in _json_lines(text, name, collect.report, array_ok=True):
        if not isinstance(rec, dict):
            collect.report.skip(name, number, NOT_AN_OBJECT, f"a JSON {type(rec).__name__}")
            continue
        id_key = _pick(rec, None, _QUERY_ID_FIELDS)
        text_key = _pick(rec, None, _QUERY_TEXT_FIELDS)
        if text_key is None:
            keys = ", ".join(map(str, list(rec)[:8])) or "none"
            collect.report.skip(
                name, number, NO_TEXT_FIELD, f"the record has no text field (its fields: {keys})"
            )
            continue
        tags_key = _pick(rec, None, (_TAGS_FIELD,))
        collect.add(
            number,
            rec.get(id_key) if id_key else None,
            rec[text_key],
            rec.get(tags_key) if tags_key else None,
        )


def _table_queries(
    text: str, name: str, collect: _QueryCollector, delimiter: str, header_required: bool
) -> None:
    first = _first_line(text).split(delimiter)
    id_col = _guess([c.strip() for c in first], _QUERY_ID_FIELDS)
    text_col = _guess([c.strip() for c in first], _QUERY_TEXT_FIELDS)
    has_header = id_col is not None and text_col is not None
    if not has_header and not header_required:  # plain "id<TAB>text" lines: the text is the rest
        for number, raw in _lines(text):
            qid, sep, query = raw.partition("\t")
            if not sep:
                collect.report.skip(name, number, BAD_ROW, "expected 'query id<TAB>text'")
                continue
            collect.add(number, qid.strip() or None, query)
        return
    buf = io.StringIO(text, newline="")
    # a TSV has no quoting (queries may contain quote characters); a CSV follows RFC 4180
    reader = csv.reader(buf, delimiter="\t", quoting=csv.QUOTE_NONE) if delimiter == "\t" else csv.reader(buf)
    header = [h.strip() for h in next(reader, [])]
    id_col = _guess(header, _QUERY_ID_FIELDS)
    text_col = _guess(header, _QUERY_TEXT_FIELDS)
    if id_col is None or text_col is None:
        missing = " and ".join(
            w
            for w, c in (
                ("an id column (_id, id, query_id)", id_col),
                ("a text column (text, query)", text_col),
            )
            if c is None
        )
        raise CorpusFormatError(
            f"the header has no {missing} (found: {', '.join(header) or 'nothing'})",
            file=name,
            line=1,
            hint="name the columns on the first row, e.g. id,text[,tags]",
        )
    tags_col = _guess(header, (_TAGS_FIELD,))
    index = {c: header.index(c) for c in (id_col, text_col, tags_col) if c is not None}
    for line, fields in _csv_records(reader, name):
        if len(fields) != len(header):
            collect.report.skip(
                name, line, BAD_ROW, f"row has {len(fields)} fields but the header has {len(header)}"
            )
            continue
        collect.add(
            line,
            fields[index[id_col]],
            fields[index[text_col]],
            fields[index[tags_col]] if tags_col is not None else None,
        )


def _detect_queries_format(text: str, name: str) -> str:
    ext = _ext(name)
    if ext in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if ext == ".csv":
        return "csv"
    if ext in (".tsv", ".tab", ".txt"):
        return "tsv"
    first = _first_line(text).lstrip()
    if first.startswith(("{", "[")):
        return "jsonl"
    if "\t" in first:
        return "tsv"
    if "," in first:
        return "csv"
    raise CorpusFormatError(
        "cannot tell the format of these queries (not JSON lines, and no tab or comma on the first line).",
        file=name,
        hint="use BEIR queries.jsonl, 'id<TAB>text' lines, or a CSV with id and text columns",
    )


def _parse_queries(text: str, name: str, fmt: str, report: LoadReport) -> tuple[str, _QueryCollector]:
    if fmt == "auto":
        fmt = _detect_queries_format(text, name)
    collect = _QueryCollector(name)
    if fmt == "jsonl":
        _jsonl_queries(text, name, collect)
    elif fmt == "tsv":
        _table_queries(text, name, collect, "\t", header_required=False)
    elif fmt == "csv":
        _table_queries(text, name, collect, ",", header_required=True)
    else:
        raise CorpusFormatError(
            f"unknown queries format {fmt!r}",
            file=name,
            hint=f"use one of: auto, {', '.join(QUERIES_FORMATS)}",
        )
    report.merge(collect.report.finish())
    return fmt, collect


def read_queries(
    source: Source, *, name: str | None = None, fmt: str = "auto", max_bytes: int = DEFAULT_MAX_BYTES
) -> QueriesRead:
    """Read queries (and their tags) from BEIR ``queries.jsonl``, ``id<TAB>text`` lines or a CSV.

    ``fmt="auto"`` goes by the extension, else by the first line. Raises
    :class:`CorpusFormatError` when the file cannot be read or gives no query at all."""
    shown, text = _text(source, name, "queries", what="queries", max_bytes=max_bytes)
    report = LoadReport(documents=[], files=[shown])
    used, collect = _parse_queries(text, shown, fmt, report)
    report.finish()
    if not collect.queries:
        reasons = "; ".join(str(w) for w in report.warnings[:3])
        raise CorpusFormatError(
            "holds no queries" + (f": every record was skipped, e.g. {reasons}." if reasons else "."),
            file=shown,
            hint="each query needs an id and a non-empty text",
        )
    return QueriesRead(
        queries=collect.queries,
        tags=collect.tags,
        fmt=used,
        name=shown,
        warnings=report.warnings,
        skipped=report.skipped,
    )


def write_queries_jsonl(queries: Mapping[str, str], tags: Mapping[str, Sequence[str]] | None = None) -> str:
    """Queries as BEIR ``queries.jsonl`` text (``{"_id", "text"}`` per line, plus ``"tags"`` for a
    query that has some)."""
    out = []
    for qid, text in queries.items():
        record: dict[str, Any] = {"_id": qid, "text": text}
        if tags and tags.get(qid):
            record["tags"] = list(tags[qid])
        out.append(json.dumps(record, ensure_ascii=False) + "\n")
    return "".join(out)


# --------------------------------------------------------------------------------------------------
# runs
# --------------------------------------------------------------------------------------------------
RUN_FORMATS = ("trec", "jsonl")
_RUN_QUERY_ID_FIELDS = ("query_id", "qid", "query-id")
_RUN_DOC_ID_FIELDS = ("doc_id", "docid", "corpus-id", "corpus_id")


@dataclass
class RunRead:
    """What :func:`read_run` found.

    ``run[qid][doc_id] = score`` (evaluators order by score, ties by doc id; the rank column only
    feeds the checks below). A JSONL run may also carry query texts (``queries[qid]``) and a
    document's title and text (``documents[doc_id] = (title, text)``, None where the file has none).
    ``warnings`` are counted, one per kind of problem: duplicate or missing ranks, a rank column that
    disagrees with the scores, the same document with two different texts.
    """

    run: dict[str, dict[str, float]]
    name: str
    warnings: list[LoadWarning] = field(default_factory=list)
    format: str = "trec"
    queries: dict[str, str] = field(default_factory=dict)
    documents: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)


def _detect_run_format(text: str, name: str) -> str:
    if _ext(name) in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    return "jsonl" if text.lstrip().startswith("{") else "trec"


def read_run(
    source: Source, *, name: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES, fmt: str | None = None
) -> RunRead:
    """Read a run: TREC ``qid Q0 docid rank score run_name``, or JSON lines ``{"query_id", "query"?,
    "doc_id", "score", "rank"?, "title"?, "text"?}`` (``fmt`` "trec" or "jsonl"; by default from the
    extension, else from the first character). A line that does not parse, a document listed twice
    for a query, a bad rank or score, or a NaN score is an error naming the line; rank problems are
    counted warnings (see :class:`RunRead`)."""
    shown, text = _text(source, name, "run", what="a run", max_bytes=max_bytes)
    fmt = fmt or _detect_run_format(text, shown)
    if fmt not in RUN_FORMATS:
        raise CorpusFormatError(
            f"unknown run format {fmt!r}", file=shown, hint=f"choose one of: {', '.join(RUN_FORMATS)}"
        )
    out = RunRead(run={}, name=shown, format=fmt)
    ranks: dict[str, list[tuple[int, str]]] = {}
    rows = _trec_run_rows(text, shown) if fmt == "trec" else _jsonl_run_rows(text, shown, out)
    for number, qid, doc_id, rank, score in rows:
        if math.isnan(score):
            raise CorpusFormatError(
                "score is NaN", file=shown, line=number, hint="give every document a number"
            )
        docs = out.run.setdefault(qid, {})
        if doc_id in docs:
            raise CorpusFormatError(
                f"document {doc_id!r} appears twice for query {qid!r}",
                file=shown,
                line=number,
                hint="a run lists each document at most once per query",
            )
        docs[doc_id] = score
        if rank is not None:
            ranks.setdefault(qid, []).append((rank, doc_id))
    out.warnings.extend(_rank_warnings(out.run, ranks, shown))
    return out


def _trec_run_rows(text: str, shown: str) -> Iterable[tuple[int, str, str, int | None, float]]:
    for number, cols in _columns(text, shown, "qid Q0 docid rank score run_name", "a TREC run file"):
        qid, _, doc_id, rank, score_text, _ = cols
        try:
            rank_value = int(rank)
            score = float(score_text)
        except ValueError:
            raise CorpusFormatError(
                f"rank {rank!r} must be an integer and score {score_text!r} a number",
                file=shown,
                line=number,
                hint="columns are: qid Q0 docid rank score run_name",
            ) from None
        yield number, qid, doc_id, rank_value, score


def _jsonl_field(record: dict, names: Sequence[str]) -> Any:
    for key in names:
        if key in record:
            return record[key]
    return None


def _jsonl_run_rows(text: str, shown: str, out: RunRead) -> Iterable[tuple[int, str, str, int | None, float]]:
    hint = 'each line is one object: {"query_id": "1", "doc_id": "d7", "score": 12.3} (query, title, text optional)'
    conflicting = 0
    for number, line in _lines(text):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusFormatError(
                f"is not valid JSON: {exc.msg}", file=shown, line=number, hint=hint
            ) from None
        if not isinstance(record, dict):
            raise CorpusFormatError(
                f"holds a JSON {type(record).__name__}, not an object", file=shown, line=number, hint=hint
            )
        qid = _jsonl_field(record, _RUN_QUERY_ID_FIELDS)
        doc_id = _jsonl_field(record, _RUN_DOC_ID_FIELDS)
        score = record.get("score")
        missing = [
            what
            for what, value in (("query_id", qid), ("doc_id", doc_id), ("score", score))
            if value is None or (isinstance(value, str) and not value.strip())
        ]
        if missing:
            raise CorpusFormatError(
                f"has no {' or '.join(missing)} (its fields: {', '.join(map(str, record)) or 'none'})",
                file=shown,
                line=number,
                hint=hint,
            )
        if isinstance(score, bool) or not isinstance(score, int | float | str):
            raise CorpusFormatError(f"score {score!r} is not a number", file=shown, line=number, hint=hint)
        try:
            score_value = float(score)
        except ValueError:
            raise CorpusFormatError(
                f"score {score!r} is not a number", file=shown, line=number, hint=hint
            ) from None
        rank = record.get("rank")
        if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int)):
            raise CorpusFormatError(f"rank {rank!r} is not an integer", file=shown, line=number, hint=hint)
        qid, doc_id = str(qid).strip(), str(doc_id).strip()
        query = record.get("query")
        if isinstance(query, str) and query.strip():
            out.queries.setdefault(qid, query.strip())
        title, body = record.get("title"), record.get("text")
        if isinstance(title, str) or isinstance(body, str):
            entry = (title if isinstance(title, str) else None, body if isinstance(body, str) else None)
            known = out.documents.setdefault(doc_id, entry)
            if known != entry:
                conflicting += 1
        yield number, qid, doc_id, rank, score_value
    if conflicting:
        out.warnings.append(
            LoadWarning(
                shown,
                None,
                f"{conflicting} line(s) give a document a title or text different from its first line; the "
                "first is used",
            )
        )


def _rank_warnings(
    run: Mapping[str, Mapping[str, float]], ranks: Mapping[str, list[tuple[int, str]]], shown: str
) -> list[LoadWarning]:
    """Counted warnings about the rank column: duplicate ranks, missing ranks (gaps in 1..n), and
    ranks that order the documents differently from their scores (evaluators go by the scores)."""
    duplicate: list[str] = []
    missing: list[str] = []
    disagree: list[str] = []
    for qid, listed in ranks.items():
        values = [r for r, _ in listed]
        if len(set(values)) < len(values):
            duplicate.append(qid)
        if set(range(1, len(values) + 1)) - set(values):
            missing.append(qid)
        by_rank = [d for _, d in sorted(listed, key=lambda t: t[0])]
        if len(set(values)) == len(values) and by_rank != rank_documents(run[qid]):
            disagree.append(qid)
    out = []

    def note(queries: list[str], what: str) -> None:
        if queries:
            first = ", ".join(queries[:3]) + (", ..." if len(queries) > 3 else "")
            out.append(
                LoadWarning(shown, None, f"{len(queries)} of {len(ranks)} queries {what} (e.g. {first})")
            )

    note(duplicate, "have duplicate ranks")
    note(missing, "have missing ranks (a gap in 1..n)")
    note(
        disagree,
        "list ranks in another order than their scores; documents are ordered by score, as trec_eval does",
    )
    return out


def write_run(
    run: Mapping[str, Mapping[str, float]], run_name: str = "rerank", *, name: str | None = None
) -> str:
    """A run as TREC run text: each query's documents in evaluation order (score descending, ties by
    doc id descending), ranks 1..n, scores with ``repr`` so they read back bit-exact."""
    _check_token(run_name, "run name", name)
    lines: list[str] = []
    for qid, scores in run.items():
        _check_token(qid, "query id", name)
        for doc_id, score in scores.items():
            _check_token(doc_id, "document id", name)
            if math.isnan(float(score)):
                raise CorpusFormatError(
                    f"query {qid!r}, document {doc_id!r} has a NaN score",
                    file=name,
                    hint="give every document a number",
                )
        for rank, doc_id in enumerate(rank_documents(scores), start=1):
            lines.append(f"{qid} Q0 {doc_id} {rank} {float(scores[doc_id])!r} {run_name}\n")
    return "".join(lines)


# --------------------------------------------------------------------------------------------------
# BEIR datasets
# --------------------------------------------------------------------------------------------------
def pick_split(splits: Sequence[str], wanted: str | None = None) -> str | None:
    """``wanted`` if present, else the first of :data:`PREFERRED_SPLITS` present, else the first
    in sorted order; None when there are no splits."""
    if not splits:
        return None
    if wanted in splits:
        return wanted
    return next((s for s in PREFERRED_SPLITS if s in splits), sorted(splits)[0])


class _BeirSource:
    """The files of a BEIR dataset in a folder or a zip (path, bytes or stream), by relative path."""

    def __init__(self, source: Source, name: str | None, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.zip: _ZipReader | None = None
        self.folder: Path | None = None
        if _is_path(source) and Path(source).is_dir():  # type: ignore[arg-type]
            path = Path(source)  # type: ignore[arg-type]
            root = path
            if not (root / "corpus.jsonl").is_file():
                subs = [p.parent for p in sorted(path.glob("*/corpus.jsonl"))]
                if len(subs) != 1:
                    raise CorpusFormatError(
                        "holds no corpus.jsonl, so it is not a BEIR dataset folder.",
                        file=name or str(path),
                        hint="point at the folder that holds corpus.jsonl, queries.jsonl and qrels/",
                    )
                root = subs[0]
            self.folder = root
            self.name = root.resolve().name
            self.shown = name or str(path)
            self.root = ""
            return
        if _is_path(source):
            path = Path(source)  # type: ignore[arg-type]
            if not path.exists():
                raise CorpusFormatError("does not exist.", file=name or str(path))
            shown = name or path.name
        else:
            shown = _source_name(source, name, "dataset.zip")
        shown, data = _raw(source, shown, "dataset.zip", max_bytes)
        if isinstance(data, str) or not data.startswith(b"PK"):
            raise CorpusFormatError(
                "is neither a BEIR folder nor a .zip.",
                file=shown,
                hint="give a BEIR folder or its .zip (corpus.jsonl, queries.jsonl, qrels/)",
            )
        self.shown = PurePosixPath(shown.replace("\\", "/")).name or shown
        self.zip = _ZipReader(data, self.shown, max_bytes)
        corpus = _zip_corpus(self.zip)
        prefix = str(PurePosixPath(corpus.filename).parent)
        self.root = "" if prefix == "." else prefix + "/"
        self.name = PurePosixPath(prefix).name if prefix != "." else _stem(self.shown)

    def label(self, rel: str) -> str:
        if self.zip is not None:
            return f"{self.zip.name}:{self.root}{rel}"
        return f"{self.name}/{rel}"

    def exists(self, rel: str) -> bool:
        if self.zip is not None:
            return self.zip.get(f"{self.root}{rel}") is not None
        assert self.folder is not None
        return (self.folder / rel).is_file()

    def splits(self) -> list[str]:
        if self.zip is not None:
            pre = f"{self.root}qrels/"
            return sorted(
                PurePosixPath(i.filename).stem
                for i in self.zip.members
                if i.filename.startswith(pre)
                and i.filename.endswith(".tsv")
                and "/" not in i.filename[len(pre) :]
            )
        assert self.folder is not None
        return sorted(p.stem for p in (self.folder / "qrels").glob("*.tsv") if p.is_file())

    def read_text(self, rel: str, what: str, encoding: str | None) -> str:
        label = self.label(rel)
        if self.zip is not None:
            info = self.zip.get(f"{self.root}{rel}")
            assert info is not None
            data = self.zip.read(info)
        else:
            assert self.folder is not None
            p = self.folder / rel
            _check_size(p.stat().st_size, label, self.max_bytes)
            data = p.read_bytes()
        return _decoded(data, label, what=what, encoding=encoding)


@dataclass(frozen=True)
class BeirLayout:
    """What a BEIR folder or zip holds, found without reading its files (see :func:`inspect_beir`)."""

    name: str  # the dataset's name: its folder, else the zip's stem
    source: str  # the folder or zip as named in messages
    splits: tuple[str, ...]
    has_queries: bool


def inspect_beir(
    source: Source, *, name: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES
) -> BeirLayout:
    """The splits of a BEIR folder or zip and whether it has queries, without reading the files.

    Raises :class:`CorpusFormatError` when it holds no ``corpus.jsonl`` (a plain archive)."""
    src = _BeirSource(source, name, max_bytes)
    return BeirLayout(
        name=src.name, source=src.shown, splits=tuple(src.splits()), has_queries=src.exists("queries.jsonl")
    )


@dataclass
class BeirRead:
    """What :func:`read_beir` found.

    ``dataset`` holds the documents, the queries and the qrels of ``split`` (None: the dataset has no
    qrels, and ``dataset.qrels`` is empty). ``splits`` are the qrels splits present; ``tags`` the
    query tags of ``queries.jsonl``; ``warnings`` every record skipped or kept with a note."""

    dataset: Dataset
    split: str | None
    splits: tuple[str, ...]
    tags: dict[str, tuple[str, ...]]
    warnings: list[LoadWarning]
    source: str
    skipped: int = 0


def read_beir(
    source: Source,
    *,
    split: str | None = None,
    require_qrels: bool = False,
    name: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    encoding: str | None = None,
) -> BeirRead:
    """Read a BEIR dataset from a folder, or a zip given as a path, bytes or a stream.

    ``split`` names the qrels file (``qrels/<split>.tsv``); it must exist, unless the dataset has no
    qrels at all and ``require_qrels`` is False. Without ``split`` the first of ``test``, ``dev``,
    ``validation``, ``train`` present is read (else the first in sorted order); a dataset without
    qrels loads with empty qrels unless ``require_qrels``.

    Documents with neither title nor text are kept (with a warning): qrels may judge them, and
    dropping them would change the metrics. Qrels naming a query or document the dataset does not
    have are skipped with a warning. ``name`` is the zip's name in messages (default: the stream's
    name, else ``dataset.zip``)."""
    src = _BeirSource(source, name, max_bytes)
    for rel in ("corpus.jsonl", "queries.jsonl"):
        if not src.exists(rel):
            raise CorpusFormatError(
                f"is missing {rel}.",
                file=src.label(""),
                hint="a BEIR dataset has corpus.jsonl, queries.jsonl and qrels/",
            )
    splits = tuple(src.splits())
    if split is not None and split not in splits and (splits or require_qrels):
        raise CorpusFormatError(
            f"has no qrels for split {split!r} (qrels/{split}.tsv).",
            file=src.label(""),
            hint=f"choose one of the splits it has: {', '.join(splits)}"
            if splits
            else "add qrels/<split>.tsv",
        )
    chosen = split if split in splits else pick_split(splits) if split is None else None
    if chosen is None and require_qrels:
        raise CorpusFormatError(
            "has no qrels (qrels/<split>.tsv).",
            file=src.label(""),
            hint="add the judgements as qrels/test.tsv, or take them from the label store",
        )
    report = LoadReport(documents=[])
    corpus_label = src.label("corpus.jsonl")
    report.files.append(corpus_label)
    _json_records(
        src.read_text("corpus.jsonl", "documents", encoding), corpus_label, report, None, True, array_ok=False
    )
    if not report.documents:
        raise CorpusFormatError("holds no documents.", file=corpus_label, hint="check the file's format")
    corpus = Corpus(report.documents, name=src.name)
    queries_label = src.label("queries.jsonl")
    report.files.append(queries_label)
    _, collect = _parse_queries(
        src.read_text("queries.jsonl", "queries", encoding), queries_label, "jsonl", report
    )
    queries = collect.queries
    qrels: dict[str, dict[str, int]] = {}
    if chosen is not None:
        rel = f"qrels/{chosen}.tsv"
        label = src.label(rel)
        report.files.append(label)
        _, rows = _parse_qrels(src.read_text(rel, "judgements", encoding), label, "auto", report)
        for row in rows:
            if row.query_id not in queries:
                report.skip(
                    label,
                    row.line,
                    "qrel for an unknown query",
                    f"query {row.query_id!r} is not in queries.jsonl",
                )
            elif row.doc_id not in corpus:
                report.skip(
                    label,
                    row.line,
                    "qrel for an unknown document",
                    f"document {row.doc_id!r} is not in corpus.jsonl",
                )
            elif row.grade is not None:
                qrels.setdefault(row.query_id, {})[row.doc_id] = row.grade
        if not qrels:
            if require_qrels:
                raise CorpusFormatError(
                    "holds no judgements of the dataset's queries and documents.",
                    file=label,
                    hint="check that the qrels use the ids of corpus.jsonl and queries.jsonl",
                )
            report.warn(label, None, "holds no judgements of the dataset's queries and documents")
    report.finish()
    return BeirRead(
        dataset=Dataset(name=src.name, corpus=corpus, queries=queries, qrels=qrels),
        split=chosen,
        splits=splits,
        tags=collect.tags,
        warnings=report.warnings,
        source=src.shown,
        skipped=report.skipped,
    )
