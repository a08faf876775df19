"""Load documents (and BEIR datasets) from the files people actually have.

Formats, chosen by file extension:

- ``.jsonl`` / ``.ndjson``: one JSON object per line, BEIR ``{"_id", "title", "text"}`` or
  ``{"id", "text"}``; ``.json``: a JSON array of such objects (or JSON lines).
- ``.csv`` / ``.tsv``: pick the text / id / title columns with :class:`CsvColumns`, or let them be
  guessed from the header.
- ``.txt`` / ``.md`` / ``.markdown``: one document per file.
- ``.pdf``: one document per file, from the PDF's text layer.
- ``.zip``: a BEIR dataset archive; :func:`load_file` takes its documents,
  :func:`rerank_core.readers.read_beir` the whole dataset (corpus, queries and qrels).

Bad input never crashes and is never dropped silently. Problems with a whole file (not UTF-8, a
binary file, empty, too large, unknown extension, missing column) raise :class:`CorpusFormatError`
naming the file and, where known, the line. Problems with single records (invalid JSON, no text,
empty id, duplicate id, ...) skip that record and add a :class:`LoadWarning` naming the file and
line; :attr:`LoadReport.skipped` and :attr:`LoadReport.skip_reasons` count them.

Ids are strings: JSONL ``_id`` / ``id`` / ``doc_id``, the CSV id column, else generated as
``"<file stem>-<line or row number>"``; text, Markdown and PDF files use the file stem, made unique.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from rerank_core.chunking import corpus_stats
from rerank_core.errors import CorpusFormatError
from rerank_core.types import Corpus, Dataset, Document

__all__ = [
    "DEFAULT_MAX_BYTES",
    "SUPPORTED_EXTENSIONS",
    "CsvColumns",
    "LoadReport",
    "LoadWarning",
    "corpus_stats",
    "csv_columns",
    "load_beir",
    "load_beir_report",
    "load_bytes",
    "load_file",
    "load_files",
]

_MB = 1024 * 1024
DEFAULT_MAX_BYTES = 100 * _MB
"""Largest file (or zip member, uncompressed) read by default: 100 MB."""

_JSONL_EXT = (".jsonl", ".ndjson")
_JSON_EXT = (".json",)
_CSV_EXT = (".csv",)
_TSV_EXT = (".tsv", ".tab")
_TEXT_EXT = (".txt",)
_MD_EXT = (".md", ".markdown")
_PDF_EXT = (".pdf",)
_ZIP_EXT = (".zip",)
SUPPORTED_EXTENSIONS: tuple[str, ...] = (
    _JSONL_EXT + _JSON_EXT + _CSV_EXT + _TSV_EXT + _TEXT_EXT + _MD_EXT + _PDF_EXT + _ZIP_EXT
)

_TEXT_FIELDS = ("text", "contents", "content", "body", "passage", "document")
_ID_FIELDS = ("_id", "id", "doc_id", "docid", "document_id")
_TITLE_FIELDS = ("title",)

# individual warnings kept per reason; the rest are counted in one summary warning
MAX_WARNINGS_PER_REASON = 50

# reasons a record is skipped (keys of LoadReport.skip_reasons)
INVALID_JSON = "invalid JSON"
NOT_AN_OBJECT = "not a JSON object"
NO_TEXT_FIELD = "no text field"
BAD_TEXT = "text is not a string"
EMPTY = "empty text"
EMPTY_ID = "empty id"
BAD_ID = "invalid id"
DUPLICATE_ID = "duplicate id"
BAD_ROW = "malformed row"


@dataclass(frozen=True)
class LoadWarning:
    """A problem with one record (or a note about a file); ``line`` is 1-based where known."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}, line {self.line}"
        return f"{where}: {self.message}"


@dataclass
class LoadReport:
    """What a load produced: the documents, every warning, and how many records were skipped and why."""

    documents: list[Document]
    warnings: list[LoadWarning] = field(default_factory=list)
    skipped: int = 0
    files: list[str] = field(default_factory=list)
    skip_reasons: dict[str, int] = field(default_factory=dict)
    # ids made up by the loader (file stem, line or row number): renamed rather than skipped on collision
    generated_ids: set[str] = field(default_factory=set, init=False, repr=False, compare=False)
    notes: int = field(default=0, init=False, repr=False, compare=False)  # warnings that skipped nothing
    _counts: Counter = field(default_factory=Counter, init=False, repr=False, compare=False)

    def warn(
        self, file: str, line: int | None, message: str, *, reason: str = "", skipped: bool = False
    ) -> None:
        """Record a warning; past MAX_WARNINGS_PER_REASON for one file and reason they are only counted."""
        if not skipped:
            self.notes += 1
        key = (file, reason or message)
        self._counts[key] += 1
        if self._counts[key] <= MAX_WARNINGS_PER_REASON:
            self.warnings.append(LoadWarning(file, line, message))

    def skip(self, file: str, line: int | None, reason: str, detail: str = "") -> None:
        """Skip one record: count it under ``reason`` and warn."""
        self.skipped += 1
        self.skip_reasons[reason] = self.skip_reasons.get(reason, 0) + 1
        self.warn(
            file, line, f"skipped ({reason}){': ' + detail if detail else ''}", reason=reason, skipped=True
        )

    def finish(self) -> LoadReport:
        """Add one warning per file and reason whose warnings were cut short. Returns self."""
        for (file, key), n in self._counts.items():
            extra = n - MAX_WARNINGS_PER_REASON
            if extra > 0:
                self.warnings.append(LoadWarning(file, None, f"... and {extra} more like: {key}"))
                self._counts[(file, key)] = MAX_WARNINGS_PER_REASON
        return self

    def merge(self, other: LoadReport) -> None:
        """Add another report's files, warnings and counts (not its documents)."""
        self.files.extend(other.files)
        self.warnings.extend(other.warnings)
        self.skipped += other.skipped
        self.notes += other.notes
        for r, n in other.skip_reasons.items():
            self.skip_reasons[r] = self.skip_reasons.get(r, 0) + n

    def summary(self) -> str:
        """E.g. "412 documents from 3 files; 2 records skipped (1 empty text, 1 duplicate id)"."""
        nd, nf = len(self.documents), len(self.files)
        text = f"{nd} document{'s' if nd != 1 else ''} from {nf} file{'s' if nf != 1 else ''}"
        if self.skipped:
            reasons = ", ".join(
                f"{n} {r}" for r, n in sorted(self.skip_reasons.items(), key=lambda kv: (-kv[1], kv[0]))
            )
            text += f"; {self.skipped} record{'s' if self.skipped != 1 else ''} skipped ({reasons})"
        if self.notes:
            text += f"; {self.notes} other warning{'s' if self.notes != 1 else ''}"
        return text

    def to_corpus(self, name: str = "corpus") -> Corpus:
        return Corpus(self.documents, name=name)

    @property
    def stats(self) -> dict:
        return corpus_stats(self.documents)


@dataclass(frozen=True)
class CsvColumns:
    """Which columns (or JSON fields) hold the text, the id and the title. ``id=None``: row numbers."""

    text: str
    id: str | None = None
    title: str | None = None


# --- reading bytes safely -----------------------------------------------------------------------

_SIGNATURES = (
    (b"%PDF", "a PDF document", ".pdf"),
    (b"PK\x03\x04", "a zip archive (or an Office document)", ".zip"),
    (b"\x89PNG", "a PNG image", None),
    (b"\xff\xd8\xff", "a JPEG image", None),
    (b"GIF8", "a GIF image", None),
    (b"\x1f\x8b", "a gzip archive", None),
    (b"\xd0\xcf\x11\xe0", "an old Office document (.doc/.xls)", None),
    (b"SQLite format 3", "an SQLite database", None),
)


def _binary_error(data: bytes, name: str, why: str, hint: str | None = None) -> CorpusFormatError:
    for magic, what, ext in _SIGNATURES:
        if data.startswith(magic):
            if hint is None:
                hint = (
                    f"rename it to {ext} if that is what it is"
                    if ext
                    else "upload the document's text instead"
                )
            return CorpusFormatError(f"looks like a binary file ({what}), not text.", file=name, hint=hint)
    return CorpusFormatError(
        f"looks like a binary file, not text ({why}).",
        file=name,
        hint=hint or f"upload a text file (one of {', '.join(SUPPORTED_EXTENSIONS)}) saved as UTF-8",
    )


def _decode(
    data: bytes,
    name: str,
    encoding: str | None = None,
    *,
    empty_hint: str = "choose a file that contains documents",
    binary_hint: str | None = None,
) -> str:
    """Bytes to text: UTF-8 (with or without a BOM), UTF-16 with a BOM, or the encoding asked for.

    ``empty_hint`` and ``binary_hint`` replace the fixes suggested for documents when the bytes are
    another kind of file (qrels, queries)."""
    if not data.strip():
        raise CorpusFormatError("is empty.", file=name, hint=empty_hint)
    if encoding:
        try:
            return data.decode(encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            raise CorpusFormatError(f"cannot be decoded as {encoding}: {exc}.", file=name) from exc
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise _binary_error(data, name, "invalid UTF-16", binary_hint) from exc
    if b"\x00" in data[:65536] or data.startswith(tuple(s for s, _, _ in _SIGNATURES)):
        raise _binary_error(data, name, "it contains NUL bytes", binary_hint)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        sample = data[:65536]
        controls = sum(1 for b in sample if b < 32 and b not in (9, 10, 13)) + sample.count(127)
        if controls > 0.05 * len(sample):
            raise _binary_error(
                data, name, "it is not valid UTF-8 and holds many control bytes", binary_hint
            ) from exc
        line = data.count(b"\n", 0, exc.start) + 1
        bad = data[exc.start : exc.start + 4].hex(" ")
        raise CorpusFormatError(
            f"is not valid UTF-8: the bytes {bad} at byte offset {exc.start} cannot be decoded "
            "(the file is probably in a Windows or Latin-1 encoding).",
            file=name,
            line=line,
            hint="re-save the file as UTF-8 (in Excel: 'CSV UTF-8'; on a command line: "
            "iconv -f cp1252 -t utf-8 in.csv > out.csv), or pass the file's encoding, e.g. encoding='cp1252'",
        ) from exc


def _check_size(size: int, name: str, max_bytes: int) -> None:
    if size > max_bytes:
        raise CorpusFormatError(
            f"is {size / _MB:.1f} MB, more than the {max_bytes / _MB:.0f} MB limit.",
            file=name,
            hint="split it into smaller files, or raise the limit (max_bytes) if the machine has the memory",
        )


def _ext(name: str) -> str:
    return PurePosixPath(name.replace("\\", "/")).suffix.lower()


def _stem(name: str) -> str:
    return PurePosixPath(name.replace("\\", "/")).stem or "document"


def _unsupported(name: str) -> CorpusFormatError:
    ext = _ext(name) or "(none)"
    return CorpusFormatError(
        f"has an unsupported extension {ext}.",
        file=name,
        hint=f"supported: {', '.join(SUPPORTED_EXTENSIONS)}; rename the file if its content is one of these",
    )


# --- records to documents -----------------------------------------------------------------------


def _pick(record: dict, explicit: str | None, candidates: tuple[str, ...]) -> str | None:
    if explicit is not None:
        return explicit if explicit in record else None
    for key in candidates:
        if key in record:
            return key
    lower = {k.lower(): k for k in record if isinstance(k, str)}
    for key in candidates:
        if key in lower:
            return lower[key]
    return None


class _Collector:
    """Turns records into documents for one file, skipping bad ones with a warning."""

    def __init__(self, report: LoadReport, name: str, keep_empty: bool = False) -> None:
        self.report = report
        self.name = name
        self.keep_empty = keep_empty
        self.first_line: dict[str, int | None] = {}

    def add(self, line: int | None, doc_id: Any, text: Any, title: Any, *, generated: bool = False) -> None:
        rep, name = self.report, self.name
        if doc_id is None or (isinstance(doc_id, str) and not doc_id.strip()):
            rep.skip(name, line, EMPTY_ID, "the record has no id")
            return
        if isinstance(doc_id, bool) or not isinstance(doc_id, str | int | float):
            rep.skip(name, line, BAD_ID, f"id must be a string or a number, not {type(doc_id).__name__}")
            return
        doc_id = str(doc_id).strip()
        if not isinstance(text, str):
            rep.skip(name, line, BAD_TEXT, f"text is {type(text).__name__} in record {doc_id!r}")
            return
        title = title.strip() if isinstance(title, str) else ("" if title is None else str(title))
        if not text.strip() and not title:
            if not self.keep_empty:
                rep.skip(name, line, EMPTY, f"record {doc_id!r} has neither text nor title")
                return
            rep.warn(
                name,
                line,
                f"kept record {doc_id!r} although it has neither text nor title",
                reason="kept empty",
            )
        if doc_id in self.first_line:
            first = self.first_line[doc_id]
            where = f"line {first}" if first is not None else "an earlier record"
            rep.skip(
                name, line, DUPLICATE_ID, f"id {doc_id!r} was already used on {where}; the first one is kept"
            )
            return
        self.first_line[doc_id] = line
        rep.documents.append(Document(id=doc_id, text=text, title=title, source=self.name))
        if generated:
            rep.generated_ids.add(doc_id)


def _json_lines(text: str, name: str, report: LoadReport, *, array_ok: bool) -> list[tuple[int | None, Any]]:
    """The JSON values of JSON lines (or of a JSON array where ``array_ok``), with their line numbers.

    A line that is not valid JSON is skipped with a warning; an invalid JSON array is an error."""
    stripped = text.lstrip()
    records: list[tuple[int | None, Any]] = []
    if array_ok and stripped.startswith("{") and "\n" in stripped:
        try:  # one JSON object spread over several lines (not JSON lines): a single record
            json.loads(stripped.split("\n", 1)[0])
        except json.JSONDecodeError:
            try:
                records = [(None, json.loads(text))]
            except json.JSONDecodeError:
                records = []
    if not array_ok and stripped.startswith("["):
        try:  # a JSON array saved as .jsonl: read it as an array, and say so
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, list):
            report.warn(name, None, "holds a JSON array, not JSON lines; read as an array")
            array_ok = True
    if array_ok and stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CorpusFormatError(
                f"is not valid JSON: {exc.msg} (column {exc.colno}).",
                file=name,
                line=exc.lineno,
                hint="fix the JSON there, or save the documents as JSON lines (.jsonl), one object per line",
            ) from exc
        records = [(None, r) for r in data]
    elif not records:
        # split on "\n" only: str.splitlines would also break at U+2028, which JSON allows inside strings
        for i, raw in enumerate(text.split("\n"), start=1):
            raw = raw.strip()
            if not raw:
                continue
            try:
                records.append((i, json.loads(raw)))
            except json.JSONDecodeError as exc:
                report.skip(name, i, INVALID_JSON, f"{exc.msg} at column {exc.colno}")
    return records


def _json_records(
    text: str, name: str, report: LoadReport, cols: CsvColumns | None, keep_empty: bool, *, array_ok: bool
) -> None:
    """Documents from JSON lines (or a JSON array) into ``report``; bad records skipped with a warning."""
    collect = _Collector(report, name, keep_empty)
    records = _json_lines(text, name, report, array_ok=array_ok)
    want_id = cols.id if cols else None
    want_text = cols.text if cols else None
    want_title = cols.title if cols else None
    any_id = any(isinstance(r, dict) and _pick(r, want_id, _ID_FIELDS) for _, r in records)
    if records and not any_id:
        if want_id is not None:
            raise CorpusFormatError(
                f"has no field {want_id!r} in any record.", file=name, hint="choose another id field"
            )
        report.warn(
            name, None, f"records have no id field ({', '.join(_ID_FIELDS)}): ids are '{_stem(name)}-<line>'"
        )
    for n, (label, rec) in enumerate(records, start=1):
        if not isinstance(rec, dict):
            report.skip(name, label, NOT_AN_OBJECT, f"record {n} is a JSON {type(rec).__name__}")
            continue
        tkey = _pick(rec, want_text, _TEXT_FIELDS)
        if tkey is None:
            keys = ", ".join(map(str, list(rec)[:8])) or "none"
            wanted = want_text or " / ".join(_TEXT_FIELDS)
            report.skip(name, label, NO_TEXT_FIELD, f"record {n} has no {wanted} field (its fields: {keys})")
            continue
        title_key = _pick(rec, want_title, _TITLE_FIELDS)
        title = rec.get(title_key, "") if title_key else ""
        if any_id:
            ikey = _pick(rec, want_id, _ID_FIELDS)
            collect.add(label, rec.get(ikey) if ikey else None, rec[tkey], title)
        else:
            collect.add(
                label, f"{_stem(name)}-{label if label is not None else n}", rec[tkey], title, generated=True
            )


def _sniff_delimiter(first_line: str, name: str) -> str:
    if _ext(name) in _TSV_EXT:
        return "\t"
    counts = {d: first_line.count(d) for d in (",", "\t", ";", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


def _csv_rows(text: str, name: str) -> tuple[list[str], Any]:
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    first = text.split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_sniff_delimiter(first, name))
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as exc:
        raise CorpusFormatError(f"has no readable header row: {exc}.", file=name, line=1) from exc
    header = [h.strip() for h in header]
    if not any(header):
        raise CorpusFormatError(
            "has an empty header row.", file=name, line=1, hint="put the column names on line 1"
        )
    return header, reader


def _csv_records(reader: Any, name: str) -> Iterator[tuple[int, list[str]]]:
    """The rows of a ``csv.reader`` after the header, with the line each starts on; blank lines
    left out. A row the csv module cannot parse is an error naming the line."""
    while True:
        line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise CorpusFormatError(
                f"cannot be read as CSV: {exc}.", file=name, line=reader.line_num
            ) from exc
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank line
        yield line, row


def csv_columns(
    path_or_bytes: str | Path | bytes, filename: str | None = None, *, encoding: str | None = None
) -> list[str]:
    """The column names of a CSV/TSV file (its header row), for the UI to offer as choices."""
    if isinstance(path_or_bytes, bytes | bytearray):
        data, name = bytes(path_or_bytes), filename or "upload.csv"
    else:
        path = Path(path_or_bytes)
        name = filename or path.name
        _check_size(path.stat().st_size, name, DEFAULT_MAX_BYTES)
        with path.open("rb") as fh:
            data = fh.read(1 << 20)  # the header is in the first MB
        if len(data) == 1 << 20:
            data = data[: data.rfind(b"\n") + 1] or data
    header, _ = _csv_rows(_decode(data, name, encoding), name)
    return header


def _guess(header: list[str], candidates: tuple[str, ...]) -> str | None:
    lower = {h.lower(): h for h in reversed(header)}
    for c in candidates:
        if c in lower:
            return lower[c]
    return None


def _load_csv(text: str, name: str, report: LoadReport, cols: CsvColumns | None) -> None:
    header, reader = _csv_rows(text, name)
    shown = ", ".join(h or "(blank)" for h in header)
    if cols is None:
        text_col = _guess(header, _TEXT_FIELDS)
        if text_col is None:
            raise CorpusFormatError(
                f"has no column that is clearly the text (columns: {shown}).",
                file=name,
                line=1,
                hint="choose the text column (and optionally the id and title columns)",
            )
        cols = CsvColumns(text=text_col, id=_guess(header, _ID_FIELDS), title=_guess(header, _TITLE_FIELDS))
    index: dict[str, int] = {}
    for role, col in (("text", cols.text), ("id", cols.id), ("title", cols.title)):
        if col is None:
            continue
        if col not in header:
            raise CorpusFormatError(
                f"has no column {col!r} for the {role}; its columns are: {shown}.",
                file=name,
                line=1,
                hint=f"choose the {role} column among those",
            )
        if header.count(col) > 1:
            raise CorpusFormatError(
                f"has {header.count(col)} columns named {col!r}; cannot tell which holds the {role}.",
                file=name,
                line=1,
                hint="rename the duplicate columns",
            )
        index[role] = header.index(col)
    if cols.id is None:
        report.warn(name, None, f"no id column chosen: ids are '{_stem(name)}-<row number>'")
    collect = _Collector(report, name)
    row_no = 0
    for line, row in _csv_records(reader, name):
        row_no += 1
        if len(row) != len(header):
            report.skip(
                name,
                line,
                BAD_ROW,
                f"row has {len(row)} fields but the header has {len(header)} (check quoting)",
            )
            continue
        doc_id: Any = row[index["id"]] if "id" in index else f"{_stem(name)}-{row_no}"
        title = row[index["title"]] if "title" in index else ""
        collect.add(line, doc_id, row[index["text"]], title, generated="id" not in index)


_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*\r?\n", re.DOTALL)
_ATX_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)[ \t#]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")


def _markdown_title(text: str) -> tuple[str, str]:
    """(title, body): the title from front matter or the first heading; a leading heading is removed."""
    title = ""
    m = _FRONT_MATTER.match(text)
    if m:
        for fm_line in m.group(1).splitlines():
            key, sep, value = fm_line.partition(":")
            if sep and key.strip().lower() == "title":
                title = value.strip().strip("\"'")
        text = text[m.end() :]
    lines = text.split("\n")
    first = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    heading, heading_at, span = "", None, 0
    for i, ln in enumerate(lines):
        h = _ATX_HEADING.match(ln)
        if h:
            heading, heading_at, span = h.group(1).strip(), i, 1
            break
        if i > 0 and lines[i - 1].strip() and _SETEXT.match(ln) and not _SETEXT.match(lines[i - 1]):
            heading, heading_at, span = lines[i - 1].strip(), i - 1, 2
            break
    if heading_at is not None:
        if not title:
            title = heading
        if heading_at == first and heading == title:
            text = "\n".join(lines[:heading_at] + lines[heading_at + span :])
    return title, text.strip()


def _load_text(text: str, name: str, report: LoadReport, markdown: bool) -> None:
    title, body = _markdown_title(text) if markdown else ("", text.strip())
    _Collector(report, name).add(None, _stem(name), body, title or _stem(name), generated=True)


def _load_pdf(data: bytes, name: str, report: LoadReport) -> None:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    if not data.lstrip()[:5].startswith(b"%PDF"):
        raise CorpusFormatError(
            "is not a PDF (it does not start with %PDF).",
            file=name,
            hint="check the file, or give it its real extension",
        )
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise CorpusFormatError(
                "is password-protected.",
                file=name,
                hint="remove the password (print to PDF) and upload again",
            )
        pages = []
        for i, page in enumerate(reader.pages, start=1):
            try:
                pages.append(page.extract_text() or "")
            except Exception as exc:  # noqa: BLE001 - pypdf raises many types on broken pages
                report.warn(
                    name, None, f"page {i}: text could not be extracted ({type(exc).__name__}: {exc})"
                )
        meta_title = ""
        try:
            meta_title = (reader.metadata.title or "") if reader.metadata else ""
        except Exception:  # noqa: BLE001 - broken metadata is not worth failing the document for
            meta_title = ""
    except CorpusFormatError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise CorpusFormatError(
            f"is not a readable PDF: {exc}.", file=name, hint="re-export or repair the PDF"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - pypdf: any other parser failure is a format problem
        raise CorpusFormatError(
            f"is not a readable PDF ({type(exc).__name__}: {exc}).",
            file=name,
            hint="re-export or repair the PDF",
        ) from exc
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text:
        raise CorpusFormatError(
            f"has no text layer ({len(pages)} page{'s' if len(pages) != 1 else ''} of images, probably a scan).",
            file=name,
            hint="run OCR on it first (for example `ocrmypdf in.pdf out.pdf`) and upload the result",
        )
    _Collector(report, name).add(
        None, _stem(name), text, str(meta_title).strip() or _stem(name), generated=True
    )


# --- zip archives -------------------------------------------------------------------------------


class _ZipReader:
    """Reads members of an in-memory zip with size limits; nothing is extracted to disk."""

    def __init__(self, data: bytes, name: str, max_bytes: int) -> None:
        self.name, self.max_bytes = name, max_bytes
        try:
            self.zf = zipfile.ZipFile(io.BytesIO(data))
        except (zipfile.BadZipFile, OSError) as exc:
            raise CorpusFormatError(f"is not a valid zip archive: {exc}.", file=name) from exc
        self.members = [i for i in self.zf.infolist() if not i.is_dir()]
        total = sum(i.file_size for i in self.members)
        if total > 4 * max_bytes:
            raise CorpusFormatError(
                f"would unpack to {total / _MB:.0f} MB, more than allowed ({4 * max_bytes / _MB:.0f} MB).",
                file=name,
                hint="unpack it yourself and load the files you need, or raise max_bytes",
            )

    def find(self, filename: str) -> zipfile.ZipInfo | None:
        """The shallowest member called ``filename`` (outside __MACOSX)."""
        hits = [
            i
            for i in self.members
            if PurePosixPath(i.filename).name == filename and not i.filename.startswith("__MACOSX/")
        ]
        return min(hits, key=lambda i: (i.filename.count("/"), i.filename)) if hits else None

    def get(self, path: str) -> zipfile.ZipInfo | None:
        return next((i for i in self.members if i.filename == path), None)

    def read(self, info: zipfile.ZipInfo) -> bytes:
        label = f"{self.name}:{info.filename}"
        if info.flag_bits & 0x1:
            raise CorpusFormatError("is encrypted.", file=label, hint="unpack it with its password first")
        _check_size(info.file_size, label, self.max_bytes)
        try:
            with self.zf.open(info) as fh:
                data = fh.read(self.max_bytes + 1)  # never trust the declared size alone
        except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError) as exc:
            raise CorpusFormatError(f"cannot be unpacked: {exc}.", file=label) from exc
        _check_size(len(data), label, self.max_bytes)
        return data


def _zip_corpus(zr: _ZipReader) -> zipfile.ZipInfo:
    info = zr.find("corpus.jsonl")
    if info is None:
        listing = ", ".join(i.filename for i in zr.members[:10]) or "nothing"
        raise CorpusFormatError(
            f"holds no corpus.jsonl, so it is not a BEIR dataset (it holds: {listing}).",
            file=zr.name,
            hint="zip a BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv), or upload the documents directly",
        )
    return info


# --- public loaders -----------------------------------------------------------------------------


def _load_into(
    report: LoadReport,
    data: bytes,
    name: str,
    csv_cols: CsvColumns | None,
    max_bytes: int,
    encoding: str | None,
) -> None:
    ext = _ext(name)
    if ext not in SUPPORTED_EXTENSIONS:
        raise _unsupported(name)
    _check_size(len(data), name, max_bytes)
    before = len(report.documents)
    skipped_before = report.skipped
    report.files.append(name)
    if ext in _ZIP_EXT:
        zr = _ZipReader(data, name, max_bytes)
        info = _zip_corpus(zr)
        member = f"{name}:{info.filename}"
        _json_records(
            _decode(zr.read(info), member, encoding), member, report, csv_cols, False, array_ok=False
        )
    elif ext in _PDF_EXT:
        _load_pdf(data, name, report)
    else:
        text = _decode(data, name, encoding)
        if ext in _JSONL_EXT:
            _json_records(text, name, report, csv_cols, False, array_ok=False)
        elif ext in _JSON_EXT:
            _json_records(text, name, report, csv_cols, False, array_ok=True)
        elif ext in _CSV_EXT + _TSV_EXT:
            _load_csv(text, name, report, csv_cols)
        else:
            _load_text(text, name, report, markdown=ext in _MD_EXT)
    if len(report.documents) == before:
        n = report.skipped - skipped_before
        if n == 0:
            raise CorpusFormatError(
                "holds no documents.", file=name, hint="choose a file that contains documents"
            )
        reasons = [
            f"line {w.line}: {w.message}" if w.line is not None else w.message
            for w in report.warnings
            if w.file.startswith(name)
        ][:3]
        raise CorpusFormatError(
            f"gave no documents: all {n} records were skipped, e.g. {'; '.join(reasons)}.",
            file=name,
            hint="check that the file has the expected format and fields",
        )


def load_bytes(
    data: bytes,
    filename: str,
    *,
    csv_columns: CsvColumns | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    encoding: str | None = None,
) -> LoadReport:
    """Load documents from the bytes of an upload; ``filename`` gives the format and the names in messages."""
    report = LoadReport(documents=[])
    _load_into(report, bytes(data), filename, csv_columns, max_bytes, encoding)
    return report.finish()


def load_file(
    path: str | Path,
    *,
    name: str | None = None,
    csv_columns: CsvColumns | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    encoding: str | None = None,
) -> LoadReport:
    """Load documents from a file. ``name`` is the name shown (and whose extension is used) instead
    of the path's, for an upload sitting in a temporary file."""
    path = Path(path)
    shown = name or path.name
    if not path.exists():
        raise CorpusFormatError("does not exist.", file=str(path))
    if path.is_dir():
        raise CorpusFormatError(
            "is a folder, not a file.", file=str(path), hint="use load_beir for a BEIR folder"
        )
    if _ext(shown) not in SUPPORTED_EXTENSIONS:
        raise _unsupported(shown)
    _check_size(path.stat().st_size, shown, max_bytes)  # before reading any of it
    return load_bytes(
        path.read_bytes(), shown, csv_columns=csv_columns, max_bytes=max_bytes, encoding=encoding
    )


Upload = str | Path | tuple[str, bytes] | Any


def _upload_name_and_bytes(item: Upload) -> tuple[str, bytes]:
    if isinstance(item, tuple) and len(item) == 2:
        return str(item[0]), bytes(item[1])
    name = getattr(item, "name", None)
    if name is not None and hasattr(item, "getvalue"):  # an uploaded file object (e.g. Streamlit's)
        return str(name), bytes(item.getvalue())
    if name is not None and hasattr(item, "read"):
        return str(name), bytes(item.read())
    raise TypeError(f"cannot load {type(item).__name__}: give a path, (filename, bytes) or an uploaded file")


def load_files(
    paths_or_uploads: Iterable[Upload],
    *,
    csv_columns: CsvColumns | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    encoding: str | None = None,
    on_error: Literal["raise", "skip"] = "raise",
) -> LoadReport:
    """Load and merge several files (paths, ``(filename, bytes)`` pairs or uploaded-file objects).

    A duplicate id across files skips the later record with a warning naming both files, except for
    ids the loader made up (file stems, row numbers), which are renamed ``<id>-2``, ``<id>-3``, ...
    with a warning. With ``on_error="skip"`` a file that cannot be read at all becomes a warning
    (and is left out of ``files``) instead of stopping the load.
    """
    merged = LoadReport(documents=[])
    owner: dict[str, str] = {}
    for item in paths_or_uploads:
        try:
            if isinstance(item, str | Path):
                one = load_file(item, csv_columns=csv_columns, max_bytes=max_bytes, encoding=encoding)
            else:
                name, data = _upload_name_and_bytes(item)
                one = load_bytes(data, name, csv_columns=csv_columns, max_bytes=max_bytes, encoding=encoding)
        except CorpusFormatError as exc:
            if on_error == "raise":
                raise
            merged.warn(exc.file or "", exc.line, f"file not loaded: {exc}", reason="file not loaded")
            continue
        merged.merge(one)
        for doc in one.documents:
            if doc.id in owner:
                if doc.id in one.generated_ids:
                    k = 2
                    while f"{doc.id}-{k}" in owner:
                        k += 1
                    new_id = f"{doc.id}-{k}"
                    merged.warn(
                        doc.source, None, f"id {doc.id!r} is taken by {owner[doc.id]}; renamed {new_id!r}"
                    )
                    doc = Document(id=new_id, text=doc.text, title=doc.title, source=doc.source)
                    merged.generated_ids.add(new_id)
                else:
                    merged.skip(
                        doc.source,
                        None,
                        DUPLICATE_ID,
                        f"id {doc.id!r} was already loaded from {owner[doc.id]}",
                    )
                    continue
            owner[doc.id] = doc.source
            merged.documents.append(doc)
    return merged.finish()


# --- BEIR datasets ------------------------------------------------------------------------------


def load_beir_report(
    path: str | Path,
    split: str = "test",
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    encoding: str | None = None,
    require_qrels: bool = True,
) -> tuple[Dataset, list[LoadWarning]]:
    """Load a BEIR dataset (folder or .zip) and every warning met on the way.

    The reader is :func:`rerank_core.readers.read_beir` (which also takes zip bytes and streams,
    and reports the splits present); this keeps the older signature. With
    ``require_qrels=False`` a dataset without any qrels loads with empty qrels.
    """
    from rerank_core.readers import read_beir

    got = read_beir(path, split=split, require_qrels=require_qrels, max_bytes=max_bytes, encoding=encoding)
    return got.dataset, got.warnings


def load_beir(path: str | Path, split: str = "test", *, require_qrels: bool = True) -> Dataset:
    """Load a BEIR dataset from a folder or a .zip (see :func:`rerank_core.readers.read_beir`)."""
    return load_beir_report(path, split, require_qrels=require_qrels)[0]
