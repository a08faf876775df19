"""Hand grading of shown documents and live per-query metrics, on top of the judgement store.

How a grade is shared across columns
------------------------------------
The store is the single source of truth. Every grading widget's key is built from
``key_prefix``, the query id and the document id, and on every run, before the widget is drawn,
its state is set from the store's current grade for (query, document, judge). A click writes the
store in the widget's callback (before the page runs again), so the same document shown in several
columns, each with its own widget (``key_prefix`` per column), always shows one grade: the stored
one. There is never a grade per column.

Streamlit refuses two widgets with the same key in one run, so a column-free page can instead call
:func:`render_grading_panel`, which draws ONE control per document of the union of the shown
lists (first appearance order). Both ways write the same single judgement per (query, document,
judge).

Grades: 0 not relevant, 1 partly relevant, 2 relevant, 3 perfect, or "skip" (seen, not decided).
Unselecting a grade does not delete it (the store keeps history; use Undo): the widget shows the
stored grade again. Imported grades outside 0..3 (Cranfield's 4, TREC's -1) are shown as text.

Live metrics use :mod:`rerank_core.metrics` on the current judge's grades: an unjudged or skipped
document counts as not relevant and is counted in the "unjudged" column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import streamlit as st

from rerank_core.config import Settings
from rerank_core.errors import RerankError
from rerank_core.judgements import DEFAULT_JUDGE, HAND_GRADES, JudgementStore, query_id_for
from rerank_core.metrics import ndcg_at_k, precision_at_k, reciprocal_rank
from rerank_core.types import RerankResult

# -- session-state keys of the labelling component (prefix ``lbl_``) -------------------------------------
JUDGE_KEY = "lbl_judge"  # the sidebar judge name (kept for the session across pages)
NOTICE_KEY = "lbl_notice"  # (kind, message) left by a callback for the next run
GRADE_KEY_PREFIX = "lbl_grade|"

SKIP = "skip"
GRADE_OPTIONS: tuple[str, ...] = ("0", "1", "2", "3", SKIP)
_SHORT = {"0": "0", "1": "1", "2": "2", "3": "3", SKIP: "skip"}
LEGEND = "0 not relevant · 1 partly · 2 relevant · 3 perfect · skip = seen, not decided"


# -- judge and store ------------------------------------------------------------------------------------


def render_judge_input() -> str:
    """The judge name field in the sidebar (default ``"default"``); returns the current judge."""
    with st.sidebar:
        st.text_input(
            "Judge",
            value=DEFAULT_JUDGE,
            key=JUDGE_KEY,
            persist_state="session",
            max_chars=255,
            help="Your labels are stored under this name. Several judges can label the same results.",
        )
    return current_judge()


def current_judge() -> str:
    """The judge of this session (``"default"`` when the field is empty)."""
    value = st.session_state.get(JUDGE_KEY)
    return value.strip() if isinstance(value, str) and value.strip() else DEFAULT_JUDGE


@st.cache_resource(show_spinner=False)
def _store(url: str) -> JudgementStore:
    return JudgementStore(url)


def open_store(settings: Settings) -> JudgementStore:
    """The process-wide judgement store of the configured database (raises ConfigError if unusable).

    The store holds no state of its own besides its database engine (every read goes to the
    database), so sharing one object between sessions is safe."""
    return _store(settings.resolved_db_url)


def corpus_id_for(name: str, chunk_description: str = "", chunked: bool = False) -> str:
    """The id under which labels of a corpus are stored: its name, plus the chunking if chunked.

    Chunked corpora get their own id because chunk ids differ from document ids; the command line's
    ``--corpus`` takes the same id (shown on the Labels page)."""
    base = name.strip() or "corpus"
    return f"{base} [{chunk_description}]" if chunked and chunk_description else base


def active_corpus_id(active) -> str:
    """:func:`corpus_id_for` of a ``ui.corpus_state.ActiveCorpus``."""
    return corpus_id_for(active.name, active.chunking.describe(), active.chunking.mode != "none")


def show_notice() -> None:
    """Show (once) what the last grading or undo callback left."""
    notice = st.session_state.pop(NOTICE_KEY, None)
    if notice:
        kind, message = notice
        getattr(st, kind if kind in ("success", "error", "warning", "info") else "info")(message)


def _notice(kind: str, message: str) -> None:
    st.session_state[NOTICE_KEY] = (kind, message)


# -- grading ---------------------------------------------------------------------------------------------


def option_for(grade: int | None, known: bool) -> str | None:
    """The widget value for a stored grade: ``None`` when unlabelled or not a hand grade."""
    if not known:
        return None
    if grade is None:
        return SKIP
    return str(grade) if grade in HAND_GRADES else None


def grade_key(key_prefix: str, query_id: str, doc_id: str) -> str:
    return f"{GRADE_KEY_PREFIX}{key_prefix}|{query_id}|{doc_id}"


def _on_grade(
    store: JudgementStore, corpus_id: str, query_text: str, doc_id: str, key: str, judge: str
) -> None:
    value = st.session_state.get(key)
    if value is None:
        return  # unselected: the stored grade stays and is shown again on this run
    grade = None if value == SKIP else int(value)
    try:
        qid = store.add_query(corpus_id, query_text)
        store.set_grade(corpus_id, qid, doc_id, grade, judge=judge)
    except RerankError as exc:
        _notice("error", f"The label was not saved: {exc}")


def render_grade_controls(
    store: JudgementStore,
    corpus_id: str,
    query_text: str,
    doc_id: str,
    key_prefix: str,
    *,
    judge: str | None = None,
    grades: Mapping[str, int | None] | None = None,
    label: str = "Grade",
) -> int | None | str:
    """A 0/1/2/3/skip control for one shown document; returns the stored grade (``"unlabelled"`` if none).

    ``key_prefix`` makes the widget key unique per place (e.g. per column); every widget of the
    same (query, document) shows the one stored grade (see the module docstring). ``grades`` is
    the judge's current grades of this query if the caller already read them (saves a query).
    Call it at most once per ``key_prefix`` and document in a run.
    """
    judge = judge or current_judge()
    qid = query_id_for(query_text)
    if grades is None:
        grades = store.grades(corpus_id, qid, judge=judge)
    known = doc_id in grades
    stored = grades.get(doc_id)
    key = grade_key(key_prefix, qid, doc_id)
    st.session_state[key] = option_for(stored, known)  # the store decides what the widget shows
    st.segmented_control(
        label,
        GRADE_OPTIONS,
        format_func=lambda o: _SHORT[o],
        key=key,
        on_change=_on_grade,
        args=(store, corpus_id, query_text, doc_id, key, judge),
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
    store: JudgementStore,
    corpus_id: str,
    query_text: str,
    docs: Sequence[ShownDoc],
    key_prefix: str = "panel",
    *,
    judge: str | None = None,
) -> None:
    """One grading row per document (the union of the shown lists): title, snippet and the control."""
    judge = judge or current_judge()
    grades = store.grades(corpus_id, query_id_for(query_text), judge=judge)
    st.caption(f"Grades: {LEGEND}. One grade per document, whichever list shows it.")
    for doc in docs:
        left, right = st.columns([3, 2], vertical_alignment="center")
        with left:
            st.markdown(f"**{_md(doc.title or doc.doc_id)}** {code(doc.doc_id)}")
            if doc.text:
                st.caption(_md(_snippet(doc.text)))
        with right:
            render_grade_controls(
                store, corpus_id, query_text, doc.doc_id, key_prefix, judge=judge, grades=grades
            )


def _on_undo(store: JudgementStore, corpus_id: str, judge: str) -> None:
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
    store: JudgementStore, corpus_id: str, judge: str | None = None, *, key: str = "lbl_undo"
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
    """Per method: nDCG@k, P@k and RR@k of its order against the graded documents, and how many
    of its shown top ``k`` are unjudged (skipped or unlabelled: not relevant for the metrics)."""
    judged = {d: g for d, g in grades.items() if g is not None}
    rows = []
    for method, res in results.items():
        shown = res.ids[:k]
        if not shown:
            rows.append(
                {
                    "method": method,
                    f"nDCG@{k}": None,
                    f"P@{k}": None,
                    f"RR@{k}": None,
                    "unjudged": None,
                    "shown": 0,
                }
            )
            continue
        ranking = res.ids
        rows.append(
            {
                "method": method,
                f"nDCG@{k}": ndcg_at_k(ranking, judged, k),
                f"P@{k}": precision_at_k(ranking, judged, k),
                f"RR@{k}": reciprocal_rank(ranking, judged, k),
                "unjudged": sum(1 for d in shown if d not in judged),
                "shown": len(shown),
            }
        )
    return rows


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
        f"From your labels on this query: nDCG@{k} {ndcg:.3f}, P@{k} {row[f'P@{k}']:.3f}, "
        f"RR@{k} {row[f'RR@{k}']:.3f}; {row['unjudged']} of the {row['shown']} shown have no grade"
    )
    return text, title, ndcg == 0


def render_live_metrics(
    store: JudgementStore,
    corpus_id: str,
    query_text: str,
    results: Mapping[str, RerankResult],
    k: int,
    *,
    judge: str | None = None,
    grades: Mapping[str, int | None] | None = None,
) -> list[dict]:
    """The live metrics table of one query (see :func:`live_metrics_rows`); returns its rows.

    ``grades`` are the judge's current grades of this query if the caller already read them."""
    judge = judge or current_judge()
    if grades is None:
        grades = store.grades(corpus_id, query_id_for(query_text), judge=judge)
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
            "shown": None,
        },
    )
    graded = sum(1 for g in grades.values() if g is not None)
    st.caption(
        f"From {graded} grade(s) by judge **{_md(judge)}** on this query ({n_rel} relevant). Unjudged and "
        "skipped documents count as not relevant, so the figures rise as you label."
    )
    return rows


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
    """What an uploaded judgements file holds, read completely before anything is written."""

    rows: list[tuple[str, str, int | None, str, object]]
    queries: dict[str, str]
    file: str
    fmt: str
    warnings: list[str]

    @property
    def query_count(self) -> int:
        return len({r[0] for r in self.rows})


def _as_upload_error(exc: RerankError, tmp_path: str, name: str) -> UploadError:
    """The core's error for a temporary copy, told with the uploaded file's name."""
    from rerank_core.errors import CorpusFormatError

    message = exc.message.replace(tmp_path, name)
    line = exc.line if isinstance(exc, CorpusFormatError) else None
    prefix = f"{name}, line {line}: " if line is not None else f"{name}: "
    if message.startswith(prefix):
        message = message[len(prefix) :]
    return UploadError(message, file=name, line=line, hint=exc.hint)


def parse_judgements_upload(
    name: str,
    data: bytes,
    fmt: str = "auto",
    judge: str | None = None,
    queries_upload: tuple[str, bytes] | None = None,
    split: str = "test",
) -> ParsedUpload:
    """Read an uploaded TREC qrels, BEIR qrels TSV, judgements CSV or BEIR dataset .zip.

    Uses the same readers as ``python -m rerank_core labels import``. Raises :class:`UploadError`
    naming the uploaded file and line; nothing is written here."""
    import tempfile
    from pathlib import Path

    from rerank_core import labels_cli, trec
    from rerank_core.judgements import IMPORT_JUDGE

    safe = Path(name).name or "upload"
    if fmt not in IMPORT_FORMATS:
        raise UploadError(
            f"unknown format {fmt!r}", file=safe, hint=f"choose one of {', '.join(IMPORT_FORMATS)}"
        )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / safe
        path.write_bytes(data)
        warnings: list[str] = []
        queries: dict[str, str] = {}
        try:
            if safe.lower().endswith(".zip"):
                from rerank_core.corpus import load_beir_report

                dataset, found = load_beir_report(path, split=split)
                used = "beir-zip"
                rows = [
                    (q, d, g, judge or IMPORT_JUDGE, None)
                    for q, docs in dataset.qrels.items()
                    for d, g in docs.items()
                ]
                queries = {q: dataset.queries[q] for q in dataset.qrels if q in dataset.queries}
                warnings = [str(w).replace(str(path), safe) for w in found]
            else:
                used = labels_cli.detect_format(path) if fmt == "auto" else fmt
                if used == "csv":
                    rows = list(labels_cli.read_csv_judgements(path, judge=judge))
                else:
                    qrels = trec.read_beir_qrels(path) if used == "beir" else trec.read_trec_qrels(path)
                    rows = [
                        (q, d, g, judge or IMPORT_JUDGE, None)
                        for q, docs in qrels.items()
                        for d, g in docs.items()
                    ]
        except RerankError as exc:
            raise _as_upload_error(exc, str(path), safe) from None
        if queries_upload is not None:
            qname = Path(queries_upload[0]).name or "queries"
            qpath = Path(tmp) / ("q-" + qname)
            qpath.write_bytes(queries_upload[1])
            try:
                queries.update(labels_cli.read_queries(qpath))
            except RerankError as exc:
                raise _as_upload_error(exc, str(qpath), qname) from None
    if not rows:
        raise UploadError(
            "holds no judgements", file=safe, hint="check that this is a qrels or judgements file"
        )
    return ParsedUpload(rows=rows, queries=queries, file=safe, fmt=used, warnings=warnings)


def export_judgements(store: JudgementStore, corpus_id: str, fmt: str, judge: str | None = None) -> str:
    """The current judgements as text in ``fmt`` (``trec``, ``beir`` or ``csv``), as the command line writes them."""
    import io
    import tempfile
    from pathlib import Path

    from rerank_core import labels_cli, trec

    if fmt == "csv":
        buf = io.StringIO()
        labels_cli.write_csv_judgements(buf, store.judgements(corpus_id, judge=judge))
        return buf.getvalue()
    writer = {"trec": trec.write_trec_qrels, "beir": trec.write_beir_qrels}.get(fmt)
    if writer is None:
        raise ValueError(f"unknown export format {fmt!r}")
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "qrels"
        try:
            path = writer(target, store.qrels(corpus_id, judge=judge))
        except RerankError as exc:
            raise _as_upload_error(exc, str(target), f"{EXPORT_FORMATS[fmt]} export") from None
        return path.read_text(encoding="utf-8")


def export_queries(store: JudgementStore, corpus_id: str) -> str:
    import io

    from rerank_core.labels_cli import write_queries_jsonl

    buf = io.StringIO()
    write_queries_jsonl(buf, store.queries(corpus_id))
    return buf.getvalue()


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
