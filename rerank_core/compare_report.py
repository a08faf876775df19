"""A report of one comparison (the Compare page's query and columns), to share as one HTML file or as
Markdown.

:func:`comparison_report` gathers, from a :class:`~rerank_core.compare.Comparison`, what the page
shows: the query, each column's order (the top ``k`` with scores, scale, movement and the
judgements), the live metrics with Coverage@k and what they rest on, latency and load times,
fallbacks and errors, and the agreement between the orders (fallbacks left out). The result is a
plain JSON-ready dict with ``"kind": "comparison"``, so ``python -m rerank_core report`` renders a
saved one too. :func:`render_comparison_html` writes one self-contained page (plotly's JavaScript
inline, no request when opened) with the building blocks of :mod:`rerank_core.report`;
:func:`render_comparison_markdown` the same tables for a pull request.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rerank_core.compare import Comparison
from rerank_core.coverage import coverage_warning
from rerank_core.live import coverage_name, live_metrics
from rerank_core.types import RerankResult

KIND = "comparison"
#: a llm grade shown in a report: (judge, grade, rationale)
LLMGrade = tuple[str, int, str]


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _column(
    res: RerankResult,
    title: str,
    comparison: Comparison,
    k: int,
    metrics: Mapping[str, Any],
    people: Mapping[str, int | None],
    llm: Mapping[str, LLMGrade],
    *,
    baseline: bool,
) -> dict[str, Any]:
    by_id = {c.doc_id: c for c in comparison.candidates}
    rows = []
    for it in res.items[:k]:
        cand = by_id.get(it.doc_id)
        judged_by_llm = llm.get(it.doc_id)
        rows.append(
            {
                "rank": it.rank,
                "doc_id": it.doc_id,
                "title": (cand.title or cand.text[:80]) if cand is not None else "",
                "score": _finite(it.score),
                "first_stage_rank": it.first_stage_rank,
                "movement": None if baseline else it.movement,
                "new": (not baseline) and it.is_new(k),
                "flagged": it.flagged,
                "truncated": it.truncated,
                "grade": people.get(it.doc_id) if it.doc_id in people else None,
                "skipped": it.doc_id in people and people[it.doc_id] is None,
                "llm_grade": None if judged_by_llm is None else judged_by_llm[1],
                "llm_rationale": None if judged_by_llm is None else judged_by_llm[2],
            }
        )
    ran = bool(res.items) and not res.fallback
    return {
        "method": res.method,
        "title": title,
        "label": res.label,
        "scale": str(res.scale),
        "precision": res.precision or None,
        "first_stage": baseline,
        "latency_ms": res.latency_ms if ran else None,
        "model_load_s": res.model_load_s,
        "fallback": res.fallback,
        "error": None if res.error is None else res.error.message,
        "hint": None if res.error is None else res.error.hint,
        "notes": [n for n in res.notes if n],
        "metrics": {key: value for key, value in metrics.items() if key not in ("method", "shown")},
        "rows": rows,
    }


def comparison_report(
    comparison: Comparison,
    *,
    k: int,
    titles: Mapping[str, str] | None = None,
    grades: Mapping[str, int | None] | None = None,
    people: Mapping[str, int | None] | None = None,
    llm: Mapping[str, LLMGrade] | None = None,
    judgements: str = "",
    corpus: str = "",
    corpus_id: str = "",
    first_stage: str = "",
    query_id: str | None = None,
    first_stage_load_s: float | None = None,
) -> dict[str, Any]:
    """The comparison as a JSON-ready dict (see the module docstring).

    ``titles[method]`` are the column titles the page shows; ``grades`` the judgements the live
    metrics rest on and ``judgements`` what they are (``people only (12 judgements)``, or people
    with an LLM filling gaps); ``people`` the people's grades shown as badges and ``llm[doc]`` an
    LLM judge's ``(judge, grade, rationale)``, shown apart."""
    from rerank_core.answers import versions

    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    titles = dict(titles or {})
    grades = dict(grades or {})
    people = dict(people if people is not None else grades)
    llm = dict(llm or {})
    orders = [comparison.first_stage, *comparison.results]
    names = [titles.get(r.method, r.method) for r in orders]
    rows = live_metrics(grades, {r.method: r for r in orders}, k)
    columns = [
        _column(res, name, comparison, k, row, people, llm, baseline=i == 0)
        for i, (res, name, row) in enumerate(zip(orders, names, rows, strict=True))
    ]
    if first_stage_load_s is not None:
        columns[0]["model_load_s"] = first_stage_load_s
    cov = {titles.get(r["method"], r["method"]): r[coverage_name(k)] for r in rows if r["shown"]}
    agreement = [
        {
            "a": titles.get(a.a, a.a),
            "b": titles.get(a.b, a.b),
            f"overlap@{k}": a.overlap,
            "kendall_tau": None if math.isnan(a.kendall_tau) else a.kendall_tau,
            "tau_documents": a.tau_n,
            f"rbo@{k}": a.rbo,
        }
        for a in comparison.agreement(k)
    ]
    return {
        "kind": KIND,
        "query": comparison.query,
        "query_id": query_id,
        "corpus": corpus,
        "corpus_id": corpus_id or comparison.corpus_fingerprint,
        "first_stage": first_stage or comparison.first_stage.method,
        "depth": comparison.depth,
        "candidates": len(comparison.candidates),
        "k": k,
        "judgements": judgements,
        "columns": columns,
        "agreement": agreement,
        "agreement_left_out": [titles.get(m, m) for m in comparison.fallbacks()],
        "coverage_warning": coverage_warning(cov, k) if cov else None,
        "versions": versions(),
        "written": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


# ---------------------------------------------------------------------------------------------
# rendering


def _grade_text(row: Mapping[str, Any]) -> str:
    parts = []
    if row.get("grade") is not None:
        parts.append(str(row["grade"]))
    elif row.get("skipped"):
        parts.append("skipped")
    if row.get("llm_grade") is not None:
        parts.append(f"LLM {row['llm_grade']}")
    return " · ".join(parts) or "–"


def _move_text(row: Mapping[str, Any]) -> str:
    if row.get("movement") is None:
        return ""
    if row.get("new"):
        return f"new (from #{row['first_stage_rank']})"
    m = row["movement"]
    return "=" if m == 0 else (f"▲{m}" if m > 0 else f"▼{-m}")


def _summary_rows(data: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    from rerank_core.report import _num

    k = data["k"]
    cov = coverage_name(k)
    header = [
        "order",
        "scale",
        "precision",
        "query ms",
        "load s",
        f"nDCG@{k}",
        f"P@{k}",
        f"RR@{k}",
        "unjudged",
        cov,
        "note",
    ]
    rows = []
    for col in data["columns"]:
        m = col.get("metrics") or {}
        note = ""
        if col.get("fallback"):
            note = f"fell back to the first-stage order: {col.get('error')}"
        elif col.get("error"):
            note = f"did not run: {col['error']}"
        rows.append(
            [
                col["title"],
                col["scale"],
                col.get("precision") or "–",
                _num(col.get("latency_ms"), 1),
                _num(col.get("model_load_s"), 2),
                _num(m.get(f"nDCG@{k}")),
                _num(m.get(f"P@{k}"), 2),
                _num(m.get(f"RR@{k}"), 2),
                "–" if m.get("unjudged") is None else str(m["unjudged"]),
                "–" if m.get(cov) is None else f"{m[cov]:.0%}",
                note,
            ]
        )
    return header, rows


ORDER_HEADER = ["#", "document", "title", "score", "vs first stage", "grade"]


def _order_rows(col: Mapping[str, Any]) -> list[list[str]]:
    from rerank_core.report import _num

    return [
        [
            str(r["rank"]),
            r["doc_id"],
            r.get("title") or "",
            _num(r.get("score"), 4)
            + (" (kept first-stage place)" if r.get("flagged") and not col["first_stage"] else ""),
            _move_text(r),
            _grade_text(r),
        ]
        for r in col["rows"]
    ]


def _agreement_rows(data: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    from rerank_core.report import _num

    k = data["k"]
    header = ["order A", "order B", f"overlap@{k}", "Kendall τ", f"RBO@{k} (p=0.9)"]
    rows = [
        [a["a"], a["b"], _num(a[f"overlap@{k}"], 2), _num(a["kendall_tau"], 2), _num(a[f"rbo@{k}"], 2)]
        for a in data.get("agreement") or []
    ]
    return header, rows


def _latency_figure(data: Mapping[str, Any]):
    import plotly.graph_objects as go

    from rerank_core.report import _plot_text

    cols = [c for c in data["columns"] if c.get("latency_ms") is not None]
    fig = go.Figure(
        go.Bar(
            x=[c["latency_ms"] for c in cols],
            y=[_plot_text(c["title"]) for c in cols],
            orientation="h",
            text=[f"{c['latency_ms']:,.1f} ms" for c in cols],
            textposition="auto",
            marker_color="#4f46e5",
        )
    )
    fig.update_layout(
        height=90 + 40 * len(cols),
        margin=dict(l=160, r=20, t=20, b=40),
        xaxis_title=f"query latency (ms, the same {data['candidates']} candidates)",
        yaxis=dict(autorange="reversed"),
    )
    return fig


def _facts(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    rows = [
        ("query", str(data["query"])),
        ("query id", str(data.get("query_id") or "–")),
        ("corpus", f"{data.get('corpus') or '–'} (id {data.get('corpus_id')})"),
        ("first stage", str(data.get("first_stage"))),
        ("candidates reranked", str(data.get("candidates"))),
        ("shown per order", str(data["k"])),
        ("live metrics rest on", str(data.get("judgements") or "–")),
    ]
    for col in data["columns"]:
        if col.get("label") and col["label"] != col["title"]:
            rows.append((f"order {col['title']}", str(col["label"])))
    return rows


def render_comparison_html(data: Mapping[str, Any]) -> str:
    """The comparison as one self-contained HTML page (plotly's JavaScript inline, no network)."""
    import plotly.io as pio

    from rerank_core.report import _CSS, _e, _pairs_table, _table

    title = f"Rerank Playground comparison: {data['query']}"
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="muted">{_e(len(data["columns"]) - 1)} reranker(s) on the same {_e(data["candidates"])} '
        f"candidates of {_e(data['first_stage'])} · top {_e(data['k'])} shown · written {_e(data.get('written', ''))}</p>",
    ]
    if data.get("coverage_warning"):
        parts.append(f'<div class="warn">{_e(data["coverage_warning"])}</div>')
    header, rows = _summary_rows(data)
    parts.append("<h2>Orders, live metrics and latency</h2>" + _table(header, rows, text_cols=(0, 1, 2, 10)))
    parts.append(
        f'<p class="muted">Live metrics rest on {_e(data.get("judgements") or "the judgements of this query")}; '
        "unjudged and skipped documents count as not relevant. Query time excludes the one-off model load.</p>"
    )
    latency = pio.to_html(
        _latency_figure(data), include_plotlyjs=True, full_html=False, config={"displaylogo": False}
    )
    parts.append(f'<figure class="plot"><figcaption>Query latency</figcaption>{latency}</figure>')
    ah, arows = _agreement_rows(data)
    parts.append("<h2>Agreement between the orders</h2>")
    if arows:
        parts.append(_table(ah, arows, text_cols=(0, 1)))
    else:
        parts.append('<p class="muted">No two orders to compare.</p>')
    if data.get("agreement_left_out"):
        parts.append(
            f'<p class="muted">Left out: {_e(", ".join(data["agreement_left_out"]))}. Its order is the first '
            "stage's, kept after an error, so it would agree fully with the first stage without having ranked "
            "anything.</p>"
        )
    parts.append("<h2>The orders</h2>")
    for col in data["columns"]:
        heading = f"{col['title']} · {col['scale']}"
        parts.append(f"<h3>{_e(heading)}</h3>")
        if col.get("error"):
            what = "Fell back to the first-stage order" if col.get("fallback") else "Did not run"
            fix = f" Fix: {col['hint']}" if col.get("hint") else ""
            parts.append(f'<div class="warn">{_e(what)}: {_e(col["error"])}{_e(fix)}</div>')
        if col["rows"]:
            parts.append(_table(ORDER_HEADER, _order_rows(col), text_cols=(1, 2, 4, 5)))
        if col.get("notes"):
            parts.append(f'<p class="muted">{_e(" · ".join(col["notes"]))}</p>')
    rationales: dict[str, Mapping[str, Any]] = {}
    for col in data["columns"]:
        for r in col["rows"]:
            if r.get("llm_rationale") and r["doc_id"] not in rationales:
                rationales[r["doc_id"]] = r
    if rationales:
        parts.append(
            "<h2>LLM grades and their reasons</h2>"
            + _table(
                ["document", "LLM grade", "rationale"],
                [[r["doc_id"], str(r["llm_grade"]), r["llm_rationale"]] for r in rationales.values()],
                text_cols=(0, 2),
            )
        )
    parts.append("<h2>Settings</h2>" + _pairs_table(_facts(data)))
    versions = [(k, v or "not installed") for k, v in (data.get("versions") or {}).items()]
    if versions:
        parts.append("<h2>Versions</h2>" + _pairs_table(versions))
    parts.append("</body></html>")
    return "\n".join(parts)


def render_comparison_markdown(data: Mapping[str, Any]) -> str:
    """The comparison as Markdown (tables, no plot)."""
    from rerank_core.report import _md, _md_table

    out = [f"# {_md('Rerank Playground comparison: ' + str(data['query']))}", ""]
    if data.get("coverage_warning"):
        out += [f"> **Warning:** {_md(data['coverage_warning'])}", ""]
    header, rows = _summary_rows(data)
    out += ["## Orders, live metrics and latency", "", _md_table(header, rows), ""]
    out += [f"Live metrics rest on {_md(data.get('judgements') or 'the judgements of this query')}.", ""]
    ah, arows = _agreement_rows(data)
    if arows:
        out += ["## Agreement between the orders", "", _md_table(ah, arows), ""]
    if data.get("agreement_left_out"):
        out += [f"Left out of the agreement (fell back): {_md(', '.join(data['agreement_left_out']))}.", ""]
    for col in data["columns"]:
        out += [f"### {_md(col['title'])} · {_md(col['scale'])}", ""]
        if col.get("error"):
            what = "Fell back to the first-stage order" if col.get("fallback") else "Did not run"
            out += [f"{what}: {_md(col['error'])}", ""]
        if col["rows"]:
            out += [_md_table(ORDER_HEADER, _order_rows(col)), ""]
    out += ["## Settings", "", _md_table(["", ""], _facts(data))]
    return "\n".join(out) + "\n"


def is_comparison(data: Mapping[str, Any]) -> bool:
    return (
        isinstance(data, Mapping) and data.get("kind") == KIND and isinstance(data.get("columns"), Sequence)
    )
