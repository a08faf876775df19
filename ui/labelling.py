"""Hand grading of shown documents and live per-query metrics, on top of the judgement store.

How a grade is shared across columns
------------------------------------
The store is the single source of truth. Every grading widget's key is built from the column, the
query id and the document id, and on every run, before the widget is drawn, its state is set from the
store's current grade for (query, document, judge). A click writes the store in the widget's callback
(before the page runs again), so the same document shown in several columns, each with its own widget,
always shows one grade: the stored one. There is never a grade per column.

Streamlit refuses two widgets with the same key in one run, so a column-free page can instead call
:func:`render_grading_panel`, which draws ONE control per document of the union of the shown lists
(first appearance order). Both ways write the same single judgement per (query, document, judge).

Query identity: a query's id comes from :meth:`JudgementStore.resolve_query_id`: a typed text that
matches a dataset query (normalised) uses that query's id, so the dataset's imported judgements and
hand grades of the same query count together.

Grades: 0 not relevant, 1 partly relevant, 2 relevant, 3 perfect, or "skip" (seen, not decided).
Unselecting a grade does not delete it (the store keeps history; use Undo): the widget shows the
stored grade again. Imported grades outside 0..3 (Cranfield's 4, TREC's -1) are shown as text.

Live metrics are computed by :func:`rerank_core.live.live_metrics` exactly as ``evaluate`` computes
them (the same run conversion and tie-breaking), on the judgements of every person (imports included;
LLM judges are left out unless the page's switch lets an LLM judge fill the gaps, labelled so): an
unjudged or skipped document counts as not relevant and is counted as unjudged, and Coverage@k says
what share of the shown top k carries a grade.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import streamlit as st

from rerank_core.access import GuardedStore
from rerank_core.coverage import is_low
from rerank_core.errors import RerankError
from rerank_core.judgements import DEFAULT_JUDGE, HAND_GRADES, JudgementStore
from rerank_core.live import coverage_name, live_metrics
from rerank_core.types import RerankResult
from ui import keys

SKIP = "skip"
GRADE_OPTIONS: tuple[str, ...] = ("0", "1", "2", "3", SKIP)
_SHORT = {"0": "0", "1": "1", "2": "2", "3": "3", SKIP: "skip"}
LEGEND = "0 not relevant · 1 partly · 2 relevant · 3 perfect · skip = seen, not decided"
#: the pages pass the store guarded by the session's actor (writes a role may not make are refused)
LabelStore = JudgementStore | GuardedStore


# -- judge ----------------------------------------------------------------------------------------------


def render_judge_input() -> str:
    """The judge name field in the sidebar (default ``"default"``); returns the current judge."""
    with st.sidebar:
        st.text_input(
            "Judge",
            value=DEFAULT_JUDGE,
            key=keys.LBL_JUDGE,
            persist_state="session",
            max_chars=255,
            help="Your labels are stored under this name. Several judges can label the same results.",
        )
    return current_judge()


def current_judge() -> str:
    """The judge of this session (``"default"`` when the field is empty)."""
    value = st.session_state.get(keys.LBL_JUDGE)
    return value.strip() if isinstance(value, str) and value.strip() else DEFAULT_JUDGE


def show_notice() -> None:
    """Show (once) what the last grading or undo callback left."""
    notice = st.session_state.pop(keys.LBL_NOTICE, None)
    if notice:
        kind, message = notice
        getattr(st, kind if kind in ("success", "error", "warning", "info") else "info")(message)


def _notice(kind: str, message: str) -> None:
    st.session_state[keys.LBL_NOTICE] = (kind, message)


# -- grading ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueryRef:
    """The query being graded: its id in the store, its text, and the corpus id."""

    corpus_id: str
    query_id: str
    text: str


def option_for(grade: int | None, known: bool) -> str | None:
    """The widget value for a stored grade: ``None`` when unlabelled or not a hand grade."""
    if not known:
        return None
    if grade is None:
        return SKIP
    return str(grade) if grade in HAND_GRADES else None


def _on_grade(store: LabelStore, ref: QueryRef, doc_id: str, key: str, judge: str) -> None:
    value = st.session_state.get(key)
    if value is None:
        return  # unselected: the stored grade stays and is shown again on this run
    grade = None if value == SKIP else int(value)
    try:
        store.add_query(ref.corpus_id, ref.text, query_id=ref.query_id)
        store.set_grade(ref.corpus_id, ref.query_id, doc_id, grade, judge=judge)
    except RerankError as exc:
        _notice("error", f"The label was not saved: {exc}")


def render_grade_controls(
    store: LabelStore,
    ref: QueryRef,
    doc_id: str,
    column: str,
    *,
    judge: str | None = None,
    grades: Mapping[str, int | None] | None = None,
    label: str = "Grade",
) -> int | None | str:
    """A 0/1/2/3/skip control for one shown document; returns the stored grade (``"unlabelled"`` if none).

    ``column`` makes the widget key unique per place; every widget of the same (query, document) shows
    the one stored grade of this judge. ``grades`` is the judge's current grades of this query if the
    caller already read them (saves a query). Call it at most once per column and document in a run.
    """
    judge = judge or current_judge()
    if grades is None:
        grades = store.grades(ref.corpus_id, ref.query_id, judge=judge)
    known = doc_id in grades
    stored = grades.get(doc_id)
    key = keys.grade_key(column, ref.query_id, doc_id)
    st.session_state[key] = option_for(stored, known)  # the store decides what the widget shows
    st.segmented_control(
        label,
        GRADE_OPTIONS,
        format_func=lambda o: _SHORT[o],
        key=key,
        on_change=_on_grade,
        args=(store, ref, doc_id, key, judge),
        label_visibility="collapsed",
        help=LEGEND,
    )
    if known and stored is not None and stored not in HAND_GRADES:
        st.caption(f"imported grade {stored}")
    return stored if known else "unlabelled"


@dataclass(frozen=True)
class ShownDoc:
    doc_id: str
    title: str = ""
    text: str = ""


def union_of_shown(results: Sequence[RerankResult], k: int) -> list[str]:
    """The documents of every result's top ``k``, each once, in order of first appearance."""
    seen: list[str] = []
    for res in results:
        for doc_id in res.ids[:k]:
            if doc_id not in seen:
                seen.append(doc_id)
    return seen


def render_grading_panel(
    store: LabelStore,
    ref: QueryRef,
    docs: Sequence[ShownDoc],
    column: str = "panel",
    *,
    judge: str | None = None,
) -> None:
    """One grading row per document (the union of the shown lists): title, snippet and the control."""
    judge = judge or current_judge()
    grades = store.grades(ref.corpus_id, ref.query_id, judge=judge)
    st.caption(f"Grades: {LEGEND}. One grade per document, whichever list shows it.")
    for doc in docs:
        left, right = st.columns([3, 2], vertical_alignment="center")
        with left:
            st.markdown(f"**{_md(doc.title or doc.doc_id)}** {code(doc.doc_id)}")
            if doc.text:
                st.caption(_md(_snippet(doc.text)))
        with right:
            render_grade_controls(store, ref, doc.doc_id, column, judge=judge, grades=grades)


def _on_undo(store: LabelStore, corpus_id: str, judge: str) -> None:
    try:
        done = store.undo(corpus_id, judge=judge)
    except RerankError as exc:
        _notice("error", f"Undo failed: {exc}")
        return
    if done is None:
        _notice("info", f"Nothing to undo for judge {judge!r} in this corpus.")
    else:
        _notice("success", done.message)


def render_undo(
    store: LabelStore, corpus_id: str, judge: str | None = None, *, key: str = "lbl_undo"
) -> None:
    """A button that takes back the judge's newest label (or whole import) in this corpus."""
    judge = judge or current_judge()
    st.button(
        "Undo my last label",
        key=key,
        icon=":material/undo:",
        on_click=_on_undo,
        args=(store, corpus_id, judge),
        help=f"Takes back the newest label (or import) by judge {judge!r}; the earlier value comes back.",
    )


# -- live metrics ----------------------------------------------------------------------------------------


def live_metrics_rows(
    grades: Mapping[str, int | None], results: Mapping[str, RerankResult], k: int
) -> list[dict]:
    """Per order: nDCG@k, P@k and RR@k against the graded documents, computed as ``evaluate`` computes
    them, how many of its shown top ``k`` have no grade (skipped or unlabelled: not relevant for the
    metrics) and Coverage@k (see :func:`rerank_core.live.live_metrics`)."""
    return live_metrics(grades, results, k)


def coverage_chip(row: Mapping, k: int) -> tuple[str, str, bool]:
    """(text, tooltip, low) of a column header's Coverage@k chip, from a :func:`live_metrics_rows` row."""
    value = row.get(coverage_name(k))
    if value is None:
        return "", "", False
    low = is_low(value)
    title = f"{row['shown'] - row['unjudged']} of the {row['shown']} shown documents carry a grade" + (
        ": the metric rests on few judgements" if low else ""
    )
    return f"{coverage_name(k)} {value:.0%}", title, low


def live_chip(grades: Mapping[str, int | None], result: RerankResult, k: int) -> tuple[str, str, bool]:
    """(text, tooltip, muted) of a column header's live metric: nDCG@k and the unjudged count."""
    (row,) = live_metrics_rows(grades, {result.method: result}, k)
    if row["shown"] == 0:
        return "", "", False
    ndcg = row[f"nDCG@{k}"]
    text = f"nDCG@{k} {ndcg:.3f}"
    if row["unjudged"]:
        text += f" · {row['unjudged']} unjudged"
    title = (
        f"From the judgements of this query: nDCG@{k} {ndcg:.3f}, P@{k} {row[f'P@{k}']:.3f}, "
        f"RR@{k} {row[f'RR@{k}']:.3f}; {row['unjudged']} of the {row['shown']} shown have no grade"
    )
    return text, title, ndcg == 0


def render_live_metrics(
    results: Mapping[str, RerankResult],
    k: int,
    grades: Mapping[str, int | None],
    judges: Sequence[str] = (),
    basis: str = "",
) -> list[dict]:
    """The live metrics table of one query (see :func:`live_metrics_rows`); returns its rows.

    ``grades`` are the merged judgements the metrics rest on, ``judges`` who gave them, ``basis`` what
    they are (people only, or people with an LLM filling gaps), shown under the table."""
    rows = live_metrics_rows(grades, results, k)
    n_rel = sum(1 for g in grades.values() if g is not None and g >= 1)
    st.dataframe(
        rows,
        hide_index=True,
        column_config={
            "method": st.column_config.TextColumn("order"),
            f"nDCG@{k}": st.column_config.ProgressColumn(
                format="%.3f", min_value=0.0, max_value=1.0, help="graded gain, top-weighted (0 to 1)"
            ),
            f"P@{k}": st.column_config.NumberColumn(
                format="%.2f", help="share of the top k graded 1 or more"
            ),
            f"RR@{k}": st.column_config.NumberColumn(
                format="%.2f", help="1 / rank of the first document graded 1 or more"
            ),
            "unjudged": st.column_config.NumberColumn(help=f"shown top-{k} documents without a grade"),
            coverage_name(k): st.column_config.NumberColumn(
                format="percent", help=f"share of the shown top {k} that carries a grade"
            ),
            "shown": None,
        },
    )
    graded = sum(1 for g in grades.values() if g is not None)
    who = ", ".join(_md(j) for j in judges) if judges else "nobody yet"
    st.caption(
        f"From {graded} judgement(s) of this query ({n_rel} relevant) by {who}"
        + (f" · {_md(basis)}" if basis else "")
        + ". Unjudged and skipped documents count as not relevant, so the figures rise as you label."
    )
    warning = live_coverage_warning(rows, k)
    if warning:
        st.warning(warning, icon=":material/rule:")
    return rows


def live_coverage_warning(rows: Sequence[Mapping], k: int) -> str | None:
    """The low-coverage warning (:func:`rerank_core.coverage.coverage_warning`) of these live rows."""
    from rerank_core.coverage import coverage_warning

    shown = {str(r["method"]): r[coverage_name(k)] for r in rows if r.get("shown")}
    return coverage_warning(shown, k) if shown else None


# -- import and export of judgements (uploads and downloads) -----------------------------------------------

IMPORT_FORMATS = ("auto", "trec", "beir", "csv")
EXPORT_FORMATS = {"trec": "TREC qrels", "beir": "BEIR qrels TSV", "csv": "CSV (every judge, skips included)"}


class UploadError(RerankError):
    """An uploaded file that cannot be imported; ``file`` and ``line`` say where."""

    kind = "corpus-format"

    def __init__(self, message: str, *, file: str, line: int | None = None, hint: str | None = None) -> None:
        self.file = file
        self.line = line
        super().__init__(message, hint=hint)

    @property
    def where(self) -> str:
        return self.file if self.line is None else f"{self.file}, line {self.line}"


@dataclass
class ParsedUpload:
    """What an uploaded judgements file holds, read completely before anything is written.

    ``rows`` are ``(query_id, doc_id, grade, judge, created_at, rationale)`` for
    :meth:`JudgementStore.import_judgements`."""

    rows: list[tuple]
    queries: dict[str, str]
    file: str
    fmt: str
    warnings: list[str]
    tags: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def query_count(self) -> int:
        return len({r[0] for r in self.rows})


def _as_upload_error(exc: RerankError, name: str) -> UploadError:
    """The core's error, told with the uploaded file's name and line (shown apart from the message)."""
    from rerank_core.errors import CorpusFormatError

    line = exc.line if isinstance(exc, CorpusFormatError) else None
    message = exc.message
    for prefix in (f"{name}, line {line}: ", f"{name}: "):
        message = message.removeprefix(prefix)
    return UploadError(message, file=name, line=line, hint=exc.hint)


def parse_judgements_upload(
    name: str,
    data: bytes,
    fmt: str = "auto",
    judge: str | None = None,
    queries_upload: tuple[str, bytes] | None = None,
    split: str | None = None,
) -> ParsedUpload:
    """Read an uploaded TREC qrels, BEIR qrels TSV, judgements CSV or BEIR dataset .zip, with the core's
    readers (the ones ``python -m rerank_core labels import`` uses), straight from the bytes. Raises
    :class:`UploadError` naming the uploaded file and line; nothing is written here."""
    from pathlib import PurePath

    from rerank_core.judgements import IMPORT_JUDGE
    from rerank_core.readers import read_beir, read_qrels, read_queries

    safe = PurePath(name).name or "upload"
    if fmt not in IMPORT_FORMATS:
        raise UploadError(
            f"unknown format {fmt!r}", file=safe, hint=f"choose one of {', '.join(IMPORT_FORMATS)}"
        )
    queries: dict[str, str] = {}
    tags: dict[str, tuple[str, ...]] = {}
    try:
        if safe.lower().endswith(".zip"):
            beir = read_beir(data, split=split, require_qrels=True, name=safe)
            used = "beir-zip"
            rows: list[tuple] = [
                (q, d, g, judge or IMPORT_JUDGE, None, None)
                for q, docs in beir.dataset.qrels.items()
                for d, g in docs.items()
            ]
            queries = {q: beir.dataset.queries[q] for q in beir.dataset.qrels if q in beir.dataset.queries}
            tags = dict(beir.tags)
            warnings = [str(w) for w in beir.warnings]
        else:
            found = read_qrels(data, name=safe, fmt=fmt)
            used, rows, warnings = (
                found.fmt,
                list(found.import_rows(judge=judge)),
                [str(w) for w in found.warnings],
            )
    except RerankError as exc:
        raise _as_upload_error(exc, safe) from None
    if queries_upload is not None:
        qname = PurePath(queries_upload[0]).name or "queries"
        try:
            more = read_queries(queries_upload[1], name=qname)
        except RerankError as exc:
            raise _as_upload_error(exc, qname) from None
        queries.update(more.queries)
        tags.update(more.tags)
        warnings += [str(w) for w in more.warnings]
    if not rows:
        raise UploadError(
            "holds no judgements", file=safe, hint="check that this is a qrels or judgements file"
        )
    return ParsedUpload(rows=rows, queries=queries, file=safe, fmt=used, warnings=warnings, tags=tags)


def export_judgements(store: LabelStore, corpus_id: str, fmt: str, judge: str | None = None) -> str:
    """The current judgements as text in ``fmt`` (``trec``, ``beir`` or ``csv``), as the command line writes them."""
    from rerank_core.readers import write_judgements_csv, write_qrels

    if fmt == "csv":
        return write_judgements_csv(store.judgements(corpus_id, judge=judge))
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}")
    try:
        return write_qrels(fmt, store.qrels(corpus_id, judge=judge), name=f"{EXPORT_FORMATS[fmt]} export")
    except RerankError as exc:
        raise _as_upload_error(exc, f"{EXPORT_FORMATS[fmt]} export") from None


def export_queries(store: LabelStore, corpus_id: str) -> str:
    from rerank_core.readers import write_queries_jsonl

    return write_queries_jsonl(store.queries(corpus_id), store.tags(corpus_id))


# -- small text functions --------------------------------------------------------------------------------


def code(text: object) -> str:
    """Text as a Markdown code span (shown literally; backticks cannot end it early)."""
    return "`" + str(text).replace("`", "'").replace("\n", " ") + "`"


def _md(text: object) -> str:
    from ui.render import md_escape

    return md_escape(text)


def _snippet(text: str, limit: int = 220) -> str:
    from ui.render import snippet

    return snippet(text, limit)
