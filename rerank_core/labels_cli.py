"""``python -m rerank_core labels import|export|shadow|migrate``: judgements in and out of the store.

Formats (read and written by :mod:`rerank_core.readers`, the same readers the app uses):

- ``trec``: TREC qrels, ``qid 0 docid grade`` per line;
- ``beir``: BEIR qrels TSV with the header ``query-id corpus-id score``; on import, a BEIR dataset
  (a folder or a .zip) brings ``qrels/<split>.tsv`` and the texts (and tags) of those queries;
- ``csv``: a header row with ``query_id,doc_id,grade`` and optionally ``judge,created_at,rationale``.
  An empty grade (or ``skip``) is a skipped pair. Export writes all six columns, one row per judge.

Grades are kept as they are (any integer gain), so ``import`` then ``export`` gives back the file's
judgements exactly. ``auto`` (the default on import) picks the format: a folder or a .zip is a BEIR
dataset, ``*.csv`` (or a ``query_id,...`` header) is CSV, 3 tab-separated columns BEIR, else TREC.
``migrate`` brings a store's schema to the newest revision (opening a store does that too).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from rerank_core import readers
from rerank_core.corpus import LoadWarning
from rerank_core.errors import CorpusFormatError, RerankError
from rerank_core.judgements import IMPORT_JUDGE, JudgementStore, safe_url, shadow_log_csv

FORMATS = ("trec", "beir", "csv")
EXIT_BAD_INPUT = 2  # as in rerank_core.cli
#: warnings printed on import before the rest are only counted
MAX_WARNINGS_SHOWN = 10

Row = tuple[str, str, int | None, str, datetime | str | None]


# --------------------------------------------------------------------------------------------------
# argument parsing
# --------------------------------------------------------------------------------------------------
def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``labels`` command (``import``, ``export``, ``shadow``, ``migrate``) to a parent CLI.

    Each leaf parser sets ``func``: ``args.func(args)`` returns the exit code and raises
    :class:`~rerank_core.errors.RerankError` (to be printed as one line, exit code 2) for bad input."""
    labels = subparsers.add_parser(
        "labels",
        help="import or export relevance judgements (TREC, BEIR, CSV) and the shadow log",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    sub = labels.add_subparsers(
        dest="labels_command", metavar="{import,export,shadow,migrate}", required=True
    )

    imp = sub.add_parser("import", help="import qrels / judgements into the store")
    _db_args(imp)
    imp.add_argument(
        "file", metavar="FILE", help="a qrels file (TREC, BEIR TSV, CSV) or a BEIR dataset folder or .zip"
    )
    imp.add_argument(
        "--format", choices=(*FORMATS, "auto"), default="auto", help="file format (default: auto)"
    )
    imp.add_argument(
        "--queries",
        metavar="FILE",
        help="query texts (and tags) to store with the labels: BEIR queries.jsonl, 'id<TAB>text' "
        "lines, or a CSV with id, text and optionally tags columns",
    )
    imp.add_argument(
        "--judge",
        default=None,
        help=f"judge name for the imported rows (default: the CSV's judge column, else {IMPORT_JUDGE!r})",
    )
    imp.add_argument(
        "--split",
        default=None,
        help="which qrels/<split>.tsv of a BEIR dataset (default: test, else dev, validation, train)",
    )
    imp.set_defaults(func=run_import)

    exp = sub.add_parser("export", help="export the current judgements")
    _db_args(exp)
    exp.add_argument("--format", choices=FORMATS, required=True, help="output format")
    exp.add_argument("--judge", default=None, help="only this judge's labels (default: every judge merged)")
    exp.add_argument(
        "--people-only",
        action="store_true",
        help="leave out LLM judges (judges named llm:...)",
    )
    exp.add_argument(
        "--output", "-o", default="-", metavar="FILE", help="output file, or - for stdout (default)"
    )
    exp.add_argument(
        "--queries-output",
        metavar="FILE",
        help="also write the query texts (and tags) as BEIR queries.jsonl",
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

    mig = sub.add_parser("migrate", help="bring the store's schema to the newest revision")
    _db_args(mig, corpus=False)
    mig.set_defaults(func=run_migrate)
    return labels


def _db_args(parser: argparse.ArgumentParser, corpus_required: bool = True, corpus: bool = True) -> None:
    parser.add_argument(
        "--db",
        metavar="URL",
        default=None,
        help="SQLAlchemy database URL (default: RERANK_DB_URL, else a SQLite file in the data directory)",
    )
    if corpus:
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


def _print_warnings(warnings: Sequence[LoadWarning]) -> None:
    for w in warnings[:MAX_WARNINGS_SHOWN]:
        print(f"warning: {w}", file=sys.stderr)
    if len(warnings) > MAX_WARNINGS_SHOWN:
        print(f"warning: ... and {len(warnings) - MAX_WARNINGS_SHOWN} more", file=sys.stderr)


# --------------------------------------------------------------------------------------------------
# import
# --------------------------------------------------------------------------------------------------
def run_import(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.exists():
        raise CorpusFormatError(
            "does not exist.", file=str(path), hint="give a qrels file or a BEIR dataset folder or .zip"
        )
    tags: dict[str, tuple[str, ...]] = {}
    note = ""
    if path.is_dir() or path.suffix.lower() == ".zip":
        if args.format not in ("auto", "beir"):
            raise CorpusFormatError(
                f"is a BEIR dataset, not {args.format} qrels.", file=str(path), hint="use --format beir"
            )
        got = readers.read_beir(path, split=args.split, require_qrels=True)
        judge = args.judge or IMPORT_JUDGE
        rows: list[Sequence[Any]] = [
            (q, d, g, judge, None) for q, docs in got.dataset.qrels.items() for d, g in docs.items()
        ]
        queries = {q: got.dataset.queries[q] for q in got.dataset.qrels if q in got.dataset.queries}
        tags = {q: got.tags[q] for q in queries if q in got.tags}
        warnings = list(got.warnings)
        note = f" (split {got.split!r} of {', '.join(got.splits)})"
    else:
        qrels = readers.read_qrels(path, fmt=args.format)
        rows = list(qrels.import_rows(judge=args.judge))
        queries = {}
        warnings = list(qrels.warnings)
    if args.queries:
        found = readers.read_queries(Path(args.queries))
        queries, tags = found.queries, found.tags
        warnings += found.warnings
    _print_warnings(warnings)
    store = _open_store(args)
    try:
        written = store.import_judgements(args.corpus, rows, queries=queries)
        if tags:
            store.set_tags(args.corpus, {q: list(t) for q, t in tags.items()})
        where = store.url
    finally:
        store.close()
    print(
        f"imported {len(rows)} judgements{note} ({written} new or changed) and {len(queries)} query "
        f"texts into corpus {args.corpus!r} at {where}",
        file=sys.stderr,
    )
    return 0


# --------------------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------------------
def run_export(args: argparse.Namespace) -> int:
    store = _open_store(args)
    try:
        if args.format == "csv":
            judgements = store.judgements(args.corpus, judge=args.judge, people_only=args.people_only)
            text = readers.write_judgements_csv(judgements)
            count = len(judgements)
        else:
            qrels = store.qrels(args.corpus, judge=args.judge, people_only=args.people_only)
            text = readers.write_qrels(args.format, qrels, name=args.output)
            count = sum(len(d) for d in qrels.values())
        queries_text = (
            readers.write_queries_jsonl(store.queries(args.corpus), store.tags(args.corpus))
            if args.queries_output
            else None
        )
    finally:
        store.close()
    _emit(args.output, text)
    if queries_text is not None:
        _emit(args.queries_output, queries_text)
    who = f"judge {args.judge!r}" if args.judge else "people only" if args.people_only else "all judges"
    print(f"exported {count} judgements of corpus {args.corpus!r} ({who}) as {args.format}", file=sys.stderr)
    return 0


def _emit(output: str, text: str) -> None:
    if output == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write(text)


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
        _emit(args.output, shadow_log_csv(entries))
    else:
        _emit(
            args.output,
            "".join(
                json.dumps({**e, "created_at": e["created_at"].isoformat()}, ensure_ascii=False) + "\n"
                for e in entries
            ),
        )
    print(f"exported {len(entries)} shadow-log entries", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------------------------------
# schema
# --------------------------------------------------------------------------------------------------
def run_migrate(args: argparse.Namespace) -> int:
    from rerank_core.judgements import migrate

    before, now = migrate(args.db)
    where = safe_url(args.db) if args.db else "the default store"
    if before == now:
        print(f"{where} is already at revision {now}", file=sys.stderr)
    elif before is None:
        print(f"{where}: created at revision {now}", file=sys.stderr)
    else:
        print(f"{where}: upgraded from revision {before} to {now}", file=sys.stderr)
    return 0
