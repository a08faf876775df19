"""The command line: ``python -m rerank_core evaluate ...``, ``report ...``, ``pgvector load`` (and ``labels``
when available).

``evaluate`` runs the same code as the app's benchmark page (:func:`rerank_core.evaluation.run_evaluation`),
writes the JSON report to ``--output`` and one TREC run file per method that ran to
``--run-dir/<name>.run``, where ``<name>`` is the method with ``:`` replaced by ``__`` and ``/`` by
``--`` (``cross-encoder:BAAI/bge-reranker-v2-m3`` -> ``cross-encoder__BAAI--bge-reranker-v2-m3.run``).
A progress bar and a summary table (with the verdict) go to stderr. The report carries the verdict
``{"call", "method", "lift", "ci", "p", "queries_needed"}`` and the per-query analysis, coverage,
cost and score distributions (see :mod:`rerank_core.answers`). Query tags come from ``--tags FILE``
or, when the dataset's ``queries.jsonl`` has a ``tags`` field, from there.

``--first-stage`` takes every first stage: ``bm25``, ``dense``, ``hybrid`` (or ``hybrid:A+B``, RRF of
any first stages), an engine, or ``run:PATH`` (the candidates a TREC or JSONL run file lists per
query). ``--methods`` may hold ``fusion:A+B+...`` (see :mod:`rerank_core.fusion`) and a fitted
``fusion:NAME``. ``--concurrency N`` runs up to N queries of a hosted method at once.

``fusion fit --dataset ... --first-stage bm25 --depth 100 --components bm25,bi-encoder --name NAME``
fits fusion weights by k-fold cross-validation by query, prints only held-out figures and saves the
fusion under ``<data_dir>/fusions/NAME.json``; ``fusion list`` lists the saved ones.

``report --input report.json --output report.html`` turns a report JSON (the evaluate command's or
the Benchmark page's) into one self-contained HTML file, or Markdown with ``--format md`` or an
``.md`` output (see :mod:`rerank_core.report`).

``--budget-dollars`` and ``--budget-seconds`` stop the run before it goes over (dollars of the
methods priced in ``[prices.<method>]``, seconds of measured query time; see :mod:`rerank_core.cost`).

Exit codes: 0 when the evaluation ran (methods that could not run are reported in the JSON with
``available: false``); 2 for bad arguments or unreadable input, with a one-line message; 3 when a
budget stopped the run (the message says where and what was spent; nothing is written); 130 when
interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rerank_core.errors import RerankError

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_BUDGET = 3
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line plus where to get help."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a non-negative number")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m rerank_core", description="Rerank Playground from the command line.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    ev = sub.add_parser(
        "evaluate",
        help="evaluate first stages and rerankers on a judged dataset",
        description=(
            "Run every judged query (or the first N) through the first stage and hand the same "
            "candidates to each reranker; first-stage names among the methods are evaluated as "
            "retrievers over the whole corpus. Writes a JSON report and one TREC run file per method."
        ),
    )
    ev.add_argument(
        "--dataset",
        required=True,
        metavar="PATH",
        help="a BEIR folder or .zip (corpus.jsonl, queries.jsonl, qrels/)",
    )
    ev.add_argument(
        "--first-stage",
        required=True,
        metavar="NAME",
        help="bm25, dense, hybrid (or hybrid:A+B), an engine (opensearch, pgvector, ...) or run:PATH "
        "(a TREC or JSONL run file)",
    )
    ev.add_argument("--depth", required=True, type=_positive_int, metavar="N", help="candidates per query")
    ev.add_argument(
        "--methods",
        required=True,
        metavar="M1,M2",
        help="comma-separated methods, each NAME or NAME:MODEL (e.g. bm25,cross-encoder:BAAI/bge-reranker-base)",
    )
    ev.add_argument("--output", required=True, metavar="FILE", help="where to write the JSON report")
    ev.add_argument(
        "--run-dir", required=True, metavar="DIR", help="where to write one TREC run file per method"
    )
    ev.add_argument(
        "--max-queries", type=_positive_int, metavar="N", help="evaluate only the first N judged queries"
    )
    ev.add_argument(
        "--split",
        default=None,
        help="qrels split of the BEIR folder (default: test, else dev, validation, train)",
    )
    ev.add_argument(
        "--config", metavar="FILE", help="settings file (default: $RERANK_CONFIG or ./rerank.toml)"
    )
    ev.add_argument(
        "--qrels-db", metavar="URL", help="take judgements from the label store at this database URL"
    )
    ev.add_argument("--corpus", metavar="ID", help="the corpus id in the label store (with --qrels-db)")
    ev.add_argument(
        "--llm-judge",
        metavar="llm:MODEL",
        help="with --qrels-db: let this LLM judge's grades fill the pairs no person judged (default: people "
        "only; the report says which)",
    )
    ev.add_argument(
        "--tags",
        metavar="FILE",
        help="query tags: a TSV (query-id, tags separated by commas) or a queries JSONL with a tags field "
        "(default: the dataset's queries.jsonl, when it has tags)",
    )
    ev.add_argument(
        "--concurrency",
        type=_positive_int,
        default=1,
        metavar="N",
        help="run up to N queries of a hosted method at once (each query's latency stays its own call's; "
        "rate limits: requests_per_second in [methods.<name>] or the settings)",
    )
    ev.add_argument(
        "--budget-dollars",
        type=_non_negative_float,
        metavar="USD",
        help="stop before the run spends more than this (methods priced in [prices.<method>] of rerank.toml)",
    )
    ev.add_argument(
        "--budget-seconds",
        type=_non_negative_float,
        metavar="S",
        help="stop before the methods' measured query time passes this many seconds",
    )
    ev.add_argument("--no-progress", action="store_true", help="no progress bar")
    ev.set_defaults(func=cmd_evaluate)
    rp = sub.add_parser(
        "report",
        help="turn a report JSON into a self-contained HTML page or Markdown",
        description=(
            "Render the JSON written by evaluate (or downloaded from the Benchmark page) as one HTML "
            "file that opens offline (plots embedded), or as Markdown for a pull request."
        ),
    )
    rp.add_argument("--input", required=True, metavar="FILE", help="the report JSON")
    rp.add_argument("--output", required=True, metavar="FILE", help="where to write the HTML or Markdown")
    rp.add_argument(
        "--format", choices=("html", "md"), help="html or md (default: md for a .md output, else html)"
    )
    rp.set_defaults(func=cmd_report)
    _add_pgvector(sub)
    _add_fusion(sub)
    try:
        from rerank_core import labels_cli
    except ImportError:
        labels_cli = None  # type: ignore[assignment]
    if labels_cli is not None:
        labels_cli.register(sub)
    return parser


# ---------------------------------------------------------------------------------------------
# evaluate


def _load_dataset(args: argparse.Namespace):
    from rerank_core.errors import ConfigError
    from rerank_core.readers import read_beir
    from rerank_core.types import Dataset

    # with --qrels-db the judgements come from the store: the folder needs no qrels of its own
    got = read_beir(
        args.dataset,
        split=None if args.qrels_db else args.split,
        require_qrels=not args.qrels_db,
    )
    for w in got.warnings[:3]:
        print(f"warning: {w}", file=sys.stderr)
    if len(got.warnings) > 3:
        print(f"warning: ... and {len(got.warnings) - 3} more about the dataset", file=sys.stderr)
    dataset = got.dataset
    if not args.qrels_db:
        return dataset
    from rerank_core.agreement import merge_qrels
    from rerank_core.judgements import JudgementStore

    with JudgementStore(args.qrels_db) as store:
        people = store.qrels(args.corpus, people_only=True)  # an LLM judge's grades only when asked
        llm = store.qrels(args.corpus, judge=args.llm_judge) if args.llm_judge else None
        stored_queries = store.queries(args.corpus)
        corpora = store.corpora() if not people and not llm else []
        tags = store.tags(args.corpus)
    if args.llm_judge and not llm:
        raise ConfigError(
            f"the label store has no judgements by {args.llm_judge!r} for corpus {args.corpus!r}",
            hint="LLM judges are named llm:<model>; grade with one on the Compare page first",
        )
    merged = merge_qrels(people, llm, args.llm_judge or "llm")
    qrels = merged.qrels
    args.store_tags = {q: list(t) for q, t in tags.items()}
    if not qrels:
        raise ConfigError(
            f"the label store {store.url} has no judgements for corpus {args.corpus!r}",
            hint=f"corpora in the store: {', '.join(corpora)}"
            if corpora
            else "the store is empty: label some results",
        )
    print(f"judgements: {merged.label}", file=sys.stderr)
    queries = dict(dataset.queries)
    # the store's text is what was judged, so it wins for the store's query ids
    queries.update(stored_queries)
    return Dataset(
        name=f"{dataset.name} (labels: {args.corpus}, {merged.basis})",
        corpus=dataset.corpus,
        queries=queries,
        qrels=qrels,
    )


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_table(report_json: dict) -> str:
    """A plain-text summary of a report (as ``EvaluationReport.to_json()`` gives it)."""
    measures: list[str] = []
    for entry in report_json["methods"].values():
        if entry.get("metrics"):
            measures = list(entry["metrics"])
            break
    header = ["method", *measures, "p50 ms", "p95 ms", "load s"]
    rows = []
    notes = []
    for name, entry in report_json["methods"].items():
        metrics = entry.get("metrics") or {}
        lat = entry.get("latency_ms") or {}
        rows.append(
            [
                name,
                *[_fmt(metrics.get(m)) for m in measures],
                _fmt(lat.get("p50"), 1),
                _fmt(lat.get("p95"), 1),
                _fmt(entry.get("model_load_s"), 2),
            ]
        )
        if not entry["available"]:
            notes.append(f"{name}: not available: {entry['error']}")
        elif entry.get("error"):
            notes.append(f"{name}: {entry['error']}")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        f"{report_json['dataset']}: {report_json['queries']} queries, first stage "
        f"{report_json['first_stage']} top {report_json['depth']}",
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths, strict=True))
        ),
    ]
    for r in rows:
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    lines.extend(notes)
    v = report_json.get("verdict")
    if v:
        from rerank_core.analysis import p_text, signed

        needed = f", {v['queries_needed']:,} queries needed" if v.get("queries_needed") else ""
        ci = v.get("ci") or [None, None]
        lines.append(
            f"verdict: {v['call']}"
            + (
                f" ({v['method']} {signed(v['lift'])} nDCG@10, 95% interval {signed(ci[0])} to "
                f"{signed(ci[1])}, {p_text(v['p'])}{needed})"
                if v.get("method")
                else ""
            )
        )
    if report_json.get("coverage_warning"):
        lines.append(str(report_json["coverage_warning"]))
    return "\n".join(lines)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from rerank_core.config import load_settings
    from rerank_core.cost import Budget
    from rerank_core.errors import ConfigError
    from rerank_core.evaluation import run_evaluation, run_file_names
    from rerank_core.progress import run_with_bar

    if bool(args.qrels_db) != bool(args.corpus):
        raise ConfigError(
            "--qrels-db and --corpus go together", hint="give both, or neither to use the dataset's qrels"
        )
    if args.llm_judge and not args.qrels_db:
        raise ConfigError(
            "--llm-judge fills gaps in the label store's judgements",
            hint="give it with --qrels-db and --corpus",
        )
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    run_file_names(methods)
    settings = load_settings(args.config)
    output = Path(args.output)
    run_dir = Path(args.run_dir)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the output folders: {exc}", hint="check --output and --run-dir"
        ) from exc
    dataset = _load_dataset(args)
    tags = _load_tags(args)
    budget = None
    if args.budget_dollars is not None or args.budget_seconds is not None:
        budget = Budget(dollars=args.budget_dollars, seconds=args.budget_seconds)

    def run(progress):
        return run_evaluation(
            dataset,
            args.first_stage,
            args.depth,
            methods,
            max_queries=args.max_queries,
            settings=settings,
            progress=progress,
            tags=tags,
            concurrency=args.concurrency,
            budget=budget,
        )

    report = run_with_bar(run, "evaluate", show=not args.no_progress)
    data = report.to_json()
    try:
        output.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        written = report.write_runs(run_dir)
    except OSError as exc:
        raise ConfigError(f"cannot write the results: {exc}", hint="check --output and --run-dir") from exc
    for warning in data.get("first_stage_warnings", []):
        print(f"warning: first stage {args.first_stage}: {warning}", file=sys.stderr)
    print(format_table(data), file=sys.stderr)
    print(
        f"report: {output}; run files: {', '.join(str(p) for p in written.values()) or 'none'}",
        file=sys.stderr,
    )
    return EXIT_OK


def _load_tags(args: argparse.Namespace) -> dict[str, list[str]]:
    """Query tags: ``--tags FILE``, else the dataset's queries.jsonl; tags set in the label store (with
    ``--qrels-db``) replace a query's tags from the file."""
    from rerank_core.per_query import read_tags

    found: dict[str, list[str]] = {}
    if args.tags:
        found = read_tags(args.tags)
    else:
        queries = Path(args.dataset) / "queries.jsonl"
        try:
            found = read_tags(queries) if queries.is_file() else {}
        except RerankError:
            found = {}  # the dataset loader already read the queries: tags are optional there
    return {**found, **getattr(args, "store_tags", {})}


# ---------------------------------------------------------------------------------------------
# report


def cmd_report(args: argparse.Namespace) -> int:
    from rerank_core.errors import ConfigError
    from rerank_core.report import write_report

    try:
        out = write_report(args.input, args.output, args.format)
    except OSError as exc:
        raise ConfigError(f"cannot write the report: {exc}", hint="check --output") from exc
    print(f"report: {out}", file=sys.stderr)
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# fusion fit / list


def _add_fusion(sub: Any) -> None:
    fu = sub.add_parser(
        "fusion",
        help="fit fusion weights by cross-validation, or list the fitted fusions",
        description="Fusions of methods on the same candidates (fusion:A+B in --methods).",
    )
    actions = fu.add_subparsers(dest="fusion_command", metavar="ACTION", parser_class=_Parser)
    fit = actions.add_parser(
        "fit",
        help="fit the weights of a fusion on judged queries (k-fold cross-validation by query)",
        description=(
            "Run the components on the first stage's candidates for every judged query, choose the weights "
            "(a grid over the simplex) on k-1 folds and measure nDCG@10 on the held-out fold, for each fold. "
            "Prints only held-out figures and saves the fusion as fusion:NAME."
        ),
    )
    fit.add_argument("--dataset", required=True, metavar="PATH", help="a BEIR folder or .zip")
    fit.add_argument("--first-stage", required=True, metavar="NAME", help="the first stage (as for evaluate)")
    fit.add_argument("--depth", required=True, type=_positive_int, metavar="N", help="candidates per query")
    fit.add_argument(
        "--components", required=True, metavar="A,B", help="the methods to fuse (first stages and rerankers)"
    )
    fit.add_argument("--name", required=True, metavar="NAME", help="the fitted fusion's name (fusion:NAME)")
    fit.add_argument("--mode", choices=("rrf", "weighted"), default="weighted", help="default: weighted")
    fit.add_argument(
        "--normalize",
        choices=("minmax", "z"),
        default="minmax",
        help="per-query score normalisation (weighted)",
    )
    fit.add_argument("--k", type=float, default=60.0, help="the RRF constant (rrf mode; default 60)")
    fit.add_argument("--folds", type=_positive_int, default=5, metavar="N", help="cross-validation folds (5)")
    fit.add_argument("--max-queries", type=_positive_int, metavar="N", help="only the first N judged queries")
    fit.add_argument("--split", default=None, help="qrels split of the BEIR folder")
    fit.add_argument("--config", metavar="FILE", help="settings file")
    fit.add_argument("--output", metavar="FILE", help="also write the fit (held-out figures) as JSON here")
    fit.add_argument("--no-progress", action="store_true", help="no progress bar")
    fit.set_defaults(func=cmd_fusion_fit)
    ls = actions.add_parser("list", help="list the fitted fusions and their held-out figures")
    ls.add_argument("--config", metavar="FILE", help="settings file")
    ls.set_defaults(func=cmd_fusion_list)


def cmd_fusion_fit(args: argparse.Namespace) -> int:
    from rerank_core.config import load_settings
    from rerank_core.fusion import fit_fusion, save_fitted
    from rerank_core.progress import tqdm_progress
    from rerank_core.readers import read_beir

    settings = load_settings(args.config)
    got = read_beir(args.dataset, split=args.split)
    components = [c.strip() for c in args.components.split(",") if c.strip()]

    def run(progress):
        return fit_fusion(
            got.dataset,
            args.first_stage,
            args.depth,
            components,
            name=args.name,
            mode=args.mode,
            normalize=args.normalize,
            k=args.k,
            folds=args.folds,
            max_queries=args.max_queries,
            settings=settings,
            progress=progress,
        )

    if args.no_progress:
        fit = run(None)
    else:
        with tqdm_progress("fitting") as bar:
            fit = run(bar)
    path = save_fitted(fit, settings)
    summary = fit.summary()
    lines = [
        f"{got.dataset.name}: {summary['queries']} judged queries, {summary['folds']}-fold cross-validation by query, "
        f"first stage {args.first_stage} top {args.depth}; {summary['measure']} on held-out folds only:",
        f"  fusion:{args.name} ({fit.config.describe()}): {summary['held_out']:.4f}",
        f"  the same fusion, equal weights (nothing fitted): {summary['unfitted']:.4f}",
    ]
    lines += [f"  {c} alone: {v:.4f}" for c, v in summary["components"].items()]
    lines.append(
        "  weights per fold: " + "; ".join(", ".join(f"{w:g}" for w in ws) for ws in fit.config.fold_weights)
    )
    lines.append(f"saved: {path} (use it as fusion:{args.name})")
    print("\n".join(lines), file=sys.stderr)
    if args.output:
        Path(args.output).write_text(json.dumps(fit.to_json(), indent=2) + "\n", encoding="utf-8")
    return EXIT_OK


def cmd_fusion_list(args: argparse.Namespace) -> int:
    from rerank_core.config import load_settings
    from rerank_core.fusion import fitted_names, fitted_summary, load_fitted

    settings = load_settings(args.config)
    names = fitted_names(settings)
    if not names:
        print(f"no fitted fusion in {settings.data_dir}", file=sys.stderr)
    for name in names:
        try:
            config = load_fitted(name, settings)
            info = fitted_summary(name, settings)
        except RerankError as exc:
            print(f"fusion:{name}: {exc}", file=sys.stderr)
            continue
        print(
            f"fusion:{name}: {config.describe()} · held-out {info.get('measure')} {info.get('held_out', 0):.4f} "
            f"on {info.get('queries')} queries of {info.get('dataset')} ({info.get('folds')} folds)",
            file=sys.stderr,
        )
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# pgvector load


def _add_pgvector(sub: Any) -> None:
    pg = sub.add_parser(
        "pgvector",
        help="put a corpus into a PostgreSQL table for the pgvector first stage",
        description="Tables for the pgvector first stage ([methods.pgvector] in the settings file).",
    )
    actions = pg.add_subparsers(dest="pgvector_command", metavar="ACTION", parser_class=_Parser)
    load = actions.add_parser(
        "load",
        help="create a table and fill it with a BEIR corpus and its embeddings",
        description=(
            "Create TABLE (id, title, text, embedding vector(d)) and fill it with the corpus of a BEIR "
            "folder, embedded by MODEL exactly as the dense first stage embeds it (normalised title and "
            "text). The table's comment records the model. Prints the settings to use."
        ),
    )
    load.add_argument("--dataset", required=True, metavar="PATH", help="a BEIR folder or .zip (corpus.jsonl)")
    load.add_argument("--url", metavar="URL", help="the database (default: $RERANK_PGVECTOR_URL)")
    load.add_argument("--table", required=True, metavar="NAME", help="the table to create (or schema.table)")
    load.add_argument(
        "--model",
        default="sentence-transformers/all-MiniLM-L6-v2",
        metavar="ID",
        help="the embedding model, an id or a local folder (default: all-MiniLM-L6-v2)",
    )
    load.add_argument("--distance", default="cosine", choices=("cosine", "l2", "inner_product"))
    load.add_argument(
        "--index",
        default="none",
        choices=("none", "hnsw", "ivfflat"),
        help="an approximate index for the distance (default none: exact scans, the same results as dense)",
    )
    load.add_argument("--replace", action="store_true", help="drop the table first if it exists")
    load.add_argument("--batch-size", type=_positive_int, default=32, metavar="N", help="encoding batch size")
    load.add_argument("--config", metavar="FILE", help="settings file (models_dir, device)")
    load.add_argument("--no-progress", action="store_true", help="no progress bar")
    load.set_defaults(func=cmd_pgvector_load)


def cmd_pgvector_load(args: argparse.Namespace) -> int:
    import os

    from rerank_core.config import load_settings
    from rerank_core.corpus import load_beir
    from rerank_core.errors import ConfigError
    from rerank_core.http import safe_url
    from rerank_core.progress import run_with_bar
    from rerank_core.retrieval.pgvector import URL_ENV, load_table

    url = args.url or os.environ.get(URL_ENV)
    if not url:
        raise ConfigError("no database given", hint=f"pass --url postgresql://user@host/db or set {URL_ENV}")
    settings = load_settings(args.config)
    corpus = load_beir(args.dataset, require_qrels=False).corpus

    def run(progress):
        return load_table(
            corpus,
            url,
            args.table,
            model=args.model,
            settings=settings,
            distance=args.distance,
            index=args.index,
            replace=args.replace,
            batch_size=args.batch_size,
            progress=progress,
        )

    summary = run_with_bar(run, "embedding", show=not args.no_progress)
    print(
        f"{summary['documents']} documents in table {summary['table']} ({summary['dimension']}-d vectors of "
        f"{summary['model']}, {summary['index']} index; encoding {summary['encode_s']} s, total "
        f"{summary['total_s']} s). Settings for the pgvector first stage:\n\n"
        "[methods.pgvector]\n"
        f'url = "{safe_url(url)}"   # or {URL_ENV} with the password\n'
        f'table = "{summary["table"]}"\n'
        'id_column = "id"\ntitle_column = "title"\ntext_column = "text"\nembedding_column = "embedding"\n'
        f'model = "{summary["model"]}"\ndistance = "{summary["distance"]}"',
        file=sys.stderr,
    )
    return EXIT_OK


# ---------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    from rerank_core.cost import BudgetExceeded

    try:
        code = args.func(args)
    except BudgetExceeded as exc:
        print(f"stopped: {exc}", file=sys.stderr)
        return EXIT_BUDGET
    except RerankError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        from rerank_core.progress import Cancelled

        if isinstance(exc, Cancelled):
            print("cancelled", file=sys.stderr)
            return EXIT_INTERRUPTED
        raise
    return EXIT_OK if code is None else int(code)
