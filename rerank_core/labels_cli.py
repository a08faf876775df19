"""``python -m rerank_core labels import|export|shadow``: move judgements in and out of the store.

Formats:

- ``trec``: TREC qrels, ``qid 0 docid grade`` per line;
- ``beir``: BEIR qrels TSV with the header ``query-id corpus-id score``; on import, a BEIR dataset
  FOLDER brings ``qrels/<split>.tsv`` and the texts of those queries from ``queries.jsonl``;
- ``csv``: a header row with ``query_id,doc_id,grade`` and optionally ``judge,created_at``. An
  empty grade (or ``skip``) is a skipped pair. Export writes all five columns, one row per judge.

Grades are kept as they are (any integer gain), so ``import`` then ``export`` gives back the file's
judgements exactly. ``auto`` (the default on import) picks the format from the path: a folder is
BEIR, ``*.csv`` is CSV, a tab-separated file with 3 columns is BEIR, anything else TREC.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from rerank_core.errors import CorpusFormatError, RerankError
from rerank_core.judgements import IMPORT_JUDGE, JudgementStore, shadow_log_csv

FORMATS = ("trec", "beir", "csv")
EXIT_BAD_INPUT = 2  # as in rerank_core.cli
CSV_COLUMNS = ("query_id", "doc_id", "grade", "judge", "created_at")
_SKIP_WORDS = frozenset({"", "skip", "skipped", "none", "null"})

Row = tuple[str, str, int | None, str, datetime | str | None]


# --------------------------------------------------------------------------------------------------
# argument parsing
# --------------------------------------------------------------------------------------------------
def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``labels`` command (with ``import``, ``export`` and ``shadow``) to a parent CLI.

    Each leaf parser sets ``func``: ``args.func(args)`` returns the exit code and raises
    :class:`~rerank_core.errors.RerankError` (to be printed as one line, exit code 2) for bad input."""
    labels = subparsers.add_parser(
        "labels",
        help="import or export relevance judgements (TREC, BEIR, CSV) and the shadow log",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    sub = labels.add_subparsers(dest="labels_command", metavar="{import,export,shadow}", required=True)

    imp = sub.add_parser("import", help="import qrels / judgements into the store")
    _db_args(imp)
    imp.add_argument(
        "file", metavar="FILE", help="a qrels file (TREC, BEIR TSV, CSV) or a BEIR dataset folder"
    )
    imp.add_argument(
        "--format", choices=(*FORMATS, "auto"), default="auto", help="file format (default: auto)"
    )
    imp.add_argument(
        "--queries",
        metavar="FILE",
        help="query texts to store with the labels: BEIR queries.jsonl ({_id, text}) or 'id<TAB>text' lines",
    )
    imp.add_argument(
        "--judge",
        default=None,
        help=f"judge name for the imported rows (default: the CSV's judge column, else {IMPORT_JUDGE!r})",
    )
    imp.add_argument(
        "--split", default="test", help="which qrels/<split>.tsv of a BEIR folder (default: test)"
    )
    imp.set_defaults(func=run_import)

    exp = sub.add_parser("export", help="export the current judgements")
    _db_args(exp)
    exp.add_argument("--format", choices=FORMATS, required=True, help="output format")
    exp.add_argument("--judge", default=None, help="only this judge's labels (default: every judge merged)")
    exp.add_argument(
        "--output", "-o", default="-", metavar="FILE", help="output file, or - for stdout (default)"
    )
    exp.add_argument(
        "--queries-output", metavar="FILE", help="also write the query texts as BEIR queries.jsonl"
    )
    exp.set_defaults(func=run_export)

    sh = sub.add_parser("shadow", help="export the shadow log (every query run on the compare page)")
    _db_args(sh, corpus_required=False)
    sh.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    sh.add_argument("--limit", type=int, default=None, help="newest N entries only (default: all)")
    sh.add_argument(
        "--output", "-o", default="-", metavar="FILE", help="output file, or - for stdout (default)"
    )
    sh.set_defaults(func=run_shadow)
    return labels


def _db_args(parser: argparse.ArgumentParser, corpus_required: bool = True) -> None:
    parser.add_argument(
        "--db",
        metavar="URL",
        default=None,
        help="SQLAlchemy database URL (default: RERANK_DB_URL, else a SQLite file in the data directory)",
    )
    parser.add_argument(
        "--corpus", required=corpus_required, metavar="ID", help="the corpus the labels belong to"
    )


def build_parser(prog: str = "python -m rerank_core") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Rerank Playground command line")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``labels ...`` (argv starts with ``labels``); returns the exit code (2 for bad input)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except RerankError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _open_store(args: argparse.Namespace) -> JudgementStore:
    return JudgementStore(args.db) if args.db else JudgementStore()


# --------------------------------------------------------------------------------------------------
# import
# --------------------------------------------------------------------------------------------------
def run_import(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.exists():
        raise CorpusFormatError(f"{path} does not exist", hint="give a qrels file or a BEIR dataset folder")
    fmt = detect_format(path) if args.format == "auto" else args.format
    queries: dict[str, str] = {}
    if path.is_dir():
        if fmt != "beir":
            raise CorpusFormatError(
                f"{path} is a folder; only a BEIR dataset folder can be imported", hint="use --format beir"
            )
        qrels_path, queries_path = beir_folder_files(path, args.split)
        rows = list(_qrels_rows(_read_qrels(qrels_path, "beir"), args.judge or IMPORT_JUDGE))
        if queries_path is not None and not args.queries:
            wanted = {r[0] for r in rows}
            queries = {q: t for q, t in read_queries(queries_path).items() if q in wanted}
    elif fmt == "csv":
        rows = list(read_csv_judgements(path, judge=args.judge))
    else:
        rows = list(_qrels_rows(_read_qrels(path, fmt), args.judge or IMPORT_JUDGE))
    if args.queries:
        queries = read_queries(Path(args.queries))
    store = _open_store(args)
    try:
        written = store.import_judgements(args.corpus, rows, queries=queries)
        where = store.url
    finally:
        store.close()
    print(
        f"imported {len(rows)} judgements ({written} new or changed) and {len(queries)} query texts "
        f"into corpus {args.corpus!r} at {where}",
        file=sys.stderr,
    )
    return 0


def detect_format(path: Path) -> str:
    """``beir`` for a folder or a 3-column TSV, ``csv`` for ``*.csv``, else ``trec``."""
    if path.is_dir():
        return "beir"
    if path.suffix.lower() == ".csv":
        return "csv"
    try:
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    return "beir" if len(line.rstrip("\r\n").split("\t")) == 3 else "trec"
    except UnicodeDecodeError:
        raise CorpusFormatError("not UTF-8 text", file=str(path), hint="save the file as UTF-8") from None
    return "trec"


def beir_folder_files(folder: Path, split: str = "test") -> tuple[Path, Path | None]:
    """The qrels file of ``split`` and ``queries.jsonl`` (None if absent) of a BEIR dataset folder."""
    qrels_dir = folder / "qrels"
    available = sorted(p.stem for p in qrels_dir.glob("*.tsv")) if qrels_dir.is_dir() else []
    qrels_path = qrels_dir / f"{split}.tsv"
    if not qrels_path.is_file():
        if not available:
            raise CorpusFormatError(
                f"{folder} has no qrels/*.tsv, so it is not a BEIR dataset with judgements",
                hint="a BEIR folder holds corpus.jsonl, queries.jsonl and qrels/<split>.tsv",
            )
        if len(available) == 1 and split == "test":
            qrels_path = qrels_dir / f"{available[0]}.tsv"
        else:
            raise CorpusFormatError(
                f"{folder} has no qrels/{split}.tsv", hint=f"choose --split from: {', '.join(available)}"
            )
    queries_path = folder / "queries.jsonl"
    return qrels_path, queries_path if queries_path.is_file() else None


def _read_qrels(path: Path, fmt: str) -> dict[str, dict[str, int]]:
    from rerank_core import trec

    return trec.read_beir_qrels(path) if fmt == "beir" else trec.read_trec_qrels(path)


def _qrels_rows(qrels: dict[str, dict[str, int]], judge: str) -> Iterator[Row]:
    for qid, docs in qrels.items():
        for doc_id, grade in docs.items():
            yield qid, doc_id, grade, judge, None


def read_csv_judgements(path: Path, judge: str | None = None) -> Iterator[Row]:
    """Rows of a judgements CSV. ``judge`` overrides the file's judge column."""
    file = str(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in CSV_COLUMNS[:3] if c not in header]
            if missing:
                raise CorpusFormatError(
                    f"the header has no column {', '.join(missing)} (found: {', '.join(header) or 'nothing'})",
                    file=file,
                    line=1,
                    hint="the first row must name the columns query_id,doc_id,grade[,judge,created_at]",
                )
            reader.fieldnames = header
            for row in reader:
                line = reader.line_num
                qid, doc_id = (row.get("query_id") or "").strip(), (row.get("doc_id") or "").strip()
                if not qid or not doc_id:
                    raise CorpusFormatError("query_id and doc_id must not be empty", file=file, line=line)
                yield (
                    qid,
                    doc_id,
                    _csv_grade(row.get("grade"), file, line),
                    judge or (row.get("judge") or "").strip() or IMPORT_JUDGE,
                    _csv_time(row.get("created_at"), file, line),
                )
    except UnicodeDecodeError:
        raise CorpusFormatError("not UTF-8 text", file=file, hint="save the file as UTF-8") from None


def _csv_grade(text: str | None, file: str, line: int) -> int | None:
    value = (text or "").strip()
    if value.lower() in _SKIP_WORDS:
        return None
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not number.is_integer():
        raise CorpusFormatError(
            f"grade {value!r} is not an integer",
            file=file,
            line=line,
            hint="grades are integers (0 not relevant .. 3 perfect); leave it empty for a skipped pair",
        )
    return int(number)


def _csv_time(text: str | None, file: str, line: int) -> datetime | None:
    value = (text or "").strip()
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CorpusFormatError(
            f"created_at {value!r} is not an ISO 8601 time",
            file=file,
            line=line,
            hint="e.g. 2024-05-01T12:00:00+00:00",
        ) from None


def read_queries(path: Path) -> dict[str, str]:
    """Query texts from BEIR ``queries.jsonl`` (``_id``/``text``) or ``id<TAB>text`` lines."""
    file = str(path)
    if not path.is_file():
        raise CorpusFormatError(f"{path} does not exist", hint="give a queries.jsonl or a TSV of id<TAB>text")
    out: dict[str, str] = {}
    jsonl = path.suffix.lower() in (".jsonl", ".json")
    try:
        with path.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                if jsonl:
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise CorpusFormatError(f"invalid JSON: {exc.msg}", file=file, line=number) from None
                    qid = (
                        obj.get("_id", obj.get("id", obj.get("query_id"))) if isinstance(obj, dict) else None
                    )
                    text = obj.get("text") if isinstance(obj, dict) else None
                    if qid is None or not isinstance(text, str):
                        raise CorpusFormatError(
                            "each line needs an id ('_id') and a 'text'",
                            file=file,
                            line=number,
                            hint='e.g. {"_id": "1", "text": "what is BM25"}',
                        )
                    out[str(qid)] = text
                else:
                    qid, sep, text = line.rstrip("\r\n").partition("\t")
                    if not sep or not qid.strip():
                        raise CorpusFormatError(
                            "expected 'query id<TAB>text'",
                            file=file,
                            line=number,
                            hint="or use a BEIR queries.jsonl",
                        )
                    out[qid.strip()] = text.strip()
    except UnicodeDecodeError:
        raise CorpusFormatError("not UTF-8 text", file=file, hint="save the file as UTF-8") from None
    return out


# --------------------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------------------
def run_export(args: argparse.Namespace) -> int:
    store = _open_store(args)
    try:
        if args.format == "csv":
            judgements = store.judgements(args.corpus, judge=args.judge)
            _emit(args.output, lambda fh: write_csv_judgements(fh, judgements))
            count = len(judgements)
        else:
            qrels = store.qrels(args.corpus, judge=args.judge)
            _emit_via_path(args.output, qrels, args.format)
            count = sum(len(d) for d in qrels.values())
        if args.queries_output:
            queries = store.queries(args.corpus)
            _emit(args.queries_output, lambda fh: write_queries_jsonl(fh, queries))
    finally:
        store.close()
    who = f"judge {args.judge!r}" if args.judge else "all judges"
    print(f"exported {count} judgements of corpus {args.corpus!r} ({who}) as {args.format}", file=sys.stderr)
    return 0


def write_csv_judgements(fh: TextIO, judgements: Sequence[Any]) -> None:
    writer = csv.writer(fh, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for j in judgements:
        grade = "" if j.grade is None else j.grade
        writer.writerow([j.query_id, j.doc_id, grade, j.judge, j.created_at.isoformat()])


def write_queries_jsonl(fh: TextIO, queries: dict[str, str]) -> None:
    for qid, text in queries.items():
        fh.write(json.dumps({"_id": qid, "text": text}, ensure_ascii=False) + "\n")


def _emit(output: str, write: Callable[[TextIO], None]) -> None:
    if output == "-":
        write(sys.stdout)
        sys.stdout.flush()
        return
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        write(fh)


def _emit_via_path(output: str, qrels: dict[str, dict[str, int]], fmt: str) -> None:
    from rerank_core import trec

    writer = trec.write_beir_qrels if fmt == "beir" else trec.write_trec_qrels
    if output != "-":
        writer(output, qrels)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = writer(Path(tmp) / "qrels", qrels)
        sys.stdout.write(path.read_text(encoding="utf-8"))
        sys.stdout.flush()


# --------------------------------------------------------------------------------------------------
# shadow log
# --------------------------------------------------------------------------------------------------
def run_shadow(args: argparse.Namespace) -> int:
    store = _open_store(args)
    try:
        entries = store.shadow_log(args.corpus, limit=args.limit)
    finally:
        store.close()
    entries.reverse()  # oldest first in a file
    if args.format == "csv":

        def write_csv(fh: TextIO) -> None:
            fh.write(shadow_log_csv(entries))

        _emit(args.output, write_csv)
    else:

        def write_jsonl(fh: TextIO) -> None:
            for e in entries:
                fh.write(
                    json.dumps({**e, "created_at": e["created_at"].isoformat()}, ensure_ascii=False) + "\n"
                )

        _emit(args.output, write_jsonl)
    print(f"exported {len(entries)} shadow-log entries", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through a subprocess in the tests
    sys.exit(main(sys.argv[1:] if sys.argv[1:2] == ["labels"] else ["labels", *sys.argv[1:]]))
