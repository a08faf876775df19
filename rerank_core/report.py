"""A report to share: one self-contained HTML file, or Markdown for a pull request.

Input is a report JSON: what ``python -m rerank_core evaluate --output`` writes, or the Benchmark
page's download (``Benchmark.to_json()``: the same plus intervals, the depth sweep and the
adaptive policy). Both carry the keys :mod:`rerank_core.answers` adds (verdict, per-query
analysis, coverage, cost, score distributions, settings, versions); an older report without
some of them renders what it has and says what is missing.

The HTML opens with no network: plotly's JavaScript is embedded inline once, the figures'
data sit in the page, there are no web fonts, remote images or links to load. Every text from
the input (method names, query texts, errors) is escaped.

``python -m rerank_core report --input report.json --output report.html`` (``--format md`` or a
``.md`` output for Markdown). A Compare page comparison saved as JSON (``"kind": "comparison"``,
:mod:`rerank_core.compare_report`) renders the same way.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rerank_core.errors import CorpusFormatError

FORMATS = ("html", "md")
TOP_QUERIES = 10  # wins and losses listed per method (the whole list is in a folded section)
_CALL_TITLES = {
    "reranker-pays": "A reranker pays",
    "fix-retrieval-first": "Fix retrieval first",
    "already-good": "The first stage is already good",
    "inconclusive": "Inconclusive",
}
_CALL_COLOURS = {
    "reranker-pays": "#1b7f3b",
    "fix-retrieval-first": "#b26a00",
    "already-good": "#1f5fa8",
    "inconclusive": "#6b6b6b",
}


# ---------------------------------------------------------------------------------------------
# input


def load_report(path: str | Path) -> dict[str, Any]:
    """The report JSON at ``path``; raises :class:`CorpusFormatError` naming what is wrong."""
    p = Path(path)
    hint = "give the JSON written by `python -m rerank_core evaluate --output` or the Benchmark page"
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CorpusFormatError(f"{p} does not exist", hint=hint) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusFormatError(f"cannot read it ({exc})", file=str(p), hint=hint) from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CorpusFormatError(f"not JSON ({exc})", file=str(p), hint=hint) from None
    check_report(data, str(p))
    return data


def check_report(data: Any, name: str = "the report") -> None:
    from rerank_core.compare_report import is_comparison

    if isinstance(data, dict) and is_comparison(data):
        return
    if not isinstance(data, dict) or not isinstance(data.get("methods"), dict):
        raise CorpusFormatError(
            'not a Rerank Playground report: it has no "methods" table',
            file=name,
            hint="give the JSON written by `python -m rerank_core evaluate --output` or the Benchmark page",
        )


# ---------------------------------------------------------------------------------------------
# helpers


def _num(value: Any, digits: int = 3, sign: bool = False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if sign:
        text = f"{value:+.{digits}f}"
        if float(text) == 0 and value != 0:  # keep the sign of a tiny value visible
            text = f"{value:+.{digits + 2}f}"
        return text
    return f"{value:.{digits}f}"


def _ci(ci: Sequence[float] | None, digits: int = 3, sign: bool = True) -> str:
    """An interval: signed for differences, plain for metric values."""
    if not ci:
        return "–"
    return f"[{_num(ci[0], digits, sign=sign)}, {_num(ci[1], digits, sign=sign)}]"


def _p(value: Any) -> str:
    return "–" if value is None else ("< 0.001" if value < 0.001 else f"{value:.3f}")


def _money(value: float | None) -> str:
    if value is None:
        return "–"
    return f"${value:,.2f}" if value >= 1 else f"${value:.4f}"


def _e(text: Any) -> str:
    return html.escape("" if text is None else str(text), quote=True)


def _plot_text(text: Any) -> str:
    """Text for plot labels: plotly reads a few HTML tags in labels, so angle brackets are swapped."""
    return str(text).replace("<", "‹").replace(">", "›")


def _methods(data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(data.get("methods") or {})


def _measures(data: Mapping[str, Any]) -> list[str]:
    for entry in _methods(data).values():
        if entry.get("metrics"):
            return list(entry["metrics"])
    return []


def _intervals(data: Mapping[str, Any], name: str, entry: Mapping[str, Any]) -> dict[str, list[float]]:
    """95% intervals per measure: the Benchmark's when present, else bootstrapped from per-query values."""
    analysis = (data.get("analysis") or {}).get("methods") or {}
    known = (analysis.get(name) or {}).get("intervals_95") or {}
    if known:
        return {m: [iv["low"], iv["high"]] for m, iv in known.items()}
    out = {}
    from rerank_core.analysis import bootstrap_ci

    for measure, values in (entry.get("per_query") or {}).items():
        if values:
            _, lo, hi = bootstrap_ci(values)
            out[measure] = [lo, hi]
    return out


def _latency(entry: Mapping[str, Any]) -> dict[str, float]:
    lat = entry.get("pipeline_latency_ms") if entry.get("kind") == "reranker" else None
    return dict(lat or entry.get("latency_ms") or {})


def _query_label(data: Mapping[str, Any], qid: str, limit: int = 90) -> str:
    text = (data.get("query_texts") or {}).get(qid, "")
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"{qid}: {text}" if text else qid


# ---------------------------------------------------------------------------------------------
# figures


def _figures(data: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(title, plotly figure) for every plot the report shows."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figs: list[tuple[str, Any]] = []
    methods = _methods(data)
    points = []
    for name, entry in methods.items():
        metrics = entry.get("metrics") or {}
        if "nDCG@10" not in metrics:
            continue
        iv = _intervals(data, name, entry).get("nDCG@10")
        lat = _latency(entry).get("p50")
        cost = (entry.get("cost") or {}).get("per_1000_queries")
        points.append((name, metrics["nDCG@10"], iv, lat, cost, bool(entry.get("fallback_queries"))))
    if points:
        has_cost = any(p[4] is not None for p in points)
        fig = make_subplots(
            rows=1,
            cols=2 if has_cost else 1,
            shared_yaxes=True,
            subplot_titles=(
                ["p50 latency per query (ms)", "cost per 1,000 queries ($)"]
                if has_cost
                else ["p50 latency per query (ms)"]
            ),
        )
        for i, (name, y, iv, lat, cost, fell) in enumerate(points):
            label = _plot_text(name + (" (with fallbacks)" if fell else ""))
            err = (
                None
                if not iv
                else dict(type="data", symmetric=False, array=[iv[1] - y], arrayminus=[y - iv[0]])
            )
            colour = f"hsl({(i * 67) % 360}, 60%, 42%)"
            if lat is not None:
                fig.add_trace(
                    go.Scatter(
                        x=[max(lat, 1e-3)],
                        y=[y],
                        error_y=err,
                        mode="markers+text",
                        text=[label],
                        textposition="top center",
                        name=label,
                        marker=dict(size=11, color=colour),
                        legendgroup=label,
                    ),
                    row=1,
                    col=1,
                )
            if has_cost and cost is not None:
                fig.add_trace(
                    go.Scatter(
                        x=[cost],
                        y=[y],
                        error_y=err,
                        mode="markers+text",
                        text=[label],
                        textposition="top center",
                        name=label,
                        marker=dict(size=11, color=colour, symbol="diamond"),
                        legendgroup=label,
                        showlegend=lat is None,
                    ),
                    row=1,
                    col=2,
                )
        fig.update_xaxes(type="log", row=1, col=1)
        fig.update_yaxes(title_text="nDCG@10 (95% interval)", row=1, col=1)
        fig.update_layout(height=420, margin=dict(l=50, r=20, t=40, b=40), showlegend=False)
        figs.append(("Quality against latency" + (" and cost" if has_cost else ""), fig))

    sweep = (data.get("analysis") or {}).get("depth_sweep") or {}
    if sweep.get("methods"):
        fig = go.Figure()
        for name, entry in sweep["methods"].items():
            pts = entry.get("points") or []
            fig.add_trace(
                go.Scatter(
                    x=[p["depth"] for p in pts],
                    y=[p["value"] for p in pts],
                    mode="lines+markers",
                    name=_plot_text(name) + (f" (knee {entry['knee']})" if entry.get("knee") else ""),
                )
            )
        fig.update_layout(
            height=380,
            margin=dict(l=50, r=20, t=20, b=40),
            xaxis_title="candidates reranked (depth)",
            yaxis_title=sweep.get("measure", "nDCG@10"),
        )
        figs.append(("Depth sweep", fig))

    analysis = (data.get("per_query_analysis") or {}).get("methods") or {}
    for name, result in analysis.items():
        rows = result.get("rows") or []
        if not rows:
            continue
        colours = ["#1b7f3b" if r["diff"] > 0 else "#b3261e" if r["diff"] < 0 else "#9e9e9e" for r in rows]
        fig = go.Figure(
            go.Bar(
                x=list(range(1, len(rows) + 1)),
                y=[r["diff"] for r in rows],
                marker_color=colours,
                hovertext=[_plot_text(_query_label(data, r["query"])) for r in rows],
                hoverinfo="text+y",
            )
        )
        fig.update_layout(
            height=300,
            margin=dict(l=50, r=20, t=20, b=40),
            xaxis_title=f"queries, sorted by difference ({result['wins']} wins, {result['losses']} losses, "
            f"{result['ties']} ties)",
            yaxis_title=f"Δ {result.get('measure', 'nDCG@10')} vs first stage",
        )
        figs.append((f"Per-query differences: {name}", fig))
    if analysis:
        names = list(analysis)
        fig = go.Figure()
        for part, colour, label in (
            ("found", "#1b7f3b", "in the top 10"),
            ("reranker", "#b26a00", "retrieved, ranked below 10 (reranker)"),
            ("retrieval", "#b3261e", "not retrieved at this depth (first stage)"),
        ):
            fig.add_trace(
                go.Bar(
                    y=[_plot_text(n) for n in names],
                    x=[analysis[n]["attribution"][part] for n in names],
                    name=label,
                    orientation="h",
                    marker_color=colour,
                )
            )
        fig.update_layout(
            barmode="stack",
            height=150 + 40 * len(names),
            margin=dict(l=160, r=20, t=50, b=40),
            xaxis_title="judged relevant documents",
            legend=dict(orientation="h", x=0, y=1.02, yanchor="bottom"),
        )
        figs.append(("Where the relevant documents went", fig))

    for name, entry in methods.items():
        dist = entry.get("score_distribution")
        if not dist or not dist.get("counts"):
            continue
        edges = dist["edges"]
        centres = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=True)]
        fig = go.Figure(
            go.Bar(
                x=centres, y=dist["counts"], width=[b - a for a, b in zip(edges[:-1], edges[1:], strict=True)]
            )
        )
        fig.update_layout(
            height=260,
            margin=dict(l=50, r=20, t=20, b=40),
            xaxis_title=f"score ({_plot_text(dist.get('scale') or 'scale not recorded')})",
            yaxis_title="documents",
            bargap=0.02,
        )
        figs.append((f"Score distribution: {name}", fig))
    return figs


# ---------------------------------------------------------------------------------------------
# shared content


def _verdict_lines(data: Mapping[str, Any]) -> tuple[str | None, str, list[tuple[str, str]]]:
    """(call, text, facts) of the verdict."""
    v = data.get("verdict")
    detail = data.get("verdict_detail") or {}
    if not v:
        note = detail.get("note") or "This report has no verdict (it was written before verdicts existed)."
        return None, note, []
    facts = [
        ("call", str(v.get("call"))),
        ("method", str(v.get("method") or "–")),
        ("nDCG@10 lift", _num(v.get("lift"), sign=True)),
        ("95% interval", _ci(v.get("ci"))),
        ("p-value", _p(v.get("p"))),
        ("queries needed", "–" if v.get("queries_needed") is None else f"{v['queries_needed']:,}"),
    ]
    return v.get("call"), detail.get("text") or "", facts


def _method_rows(data: Mapping[str, Any]) -> tuple[list[str], list[list[str]], list[str]]:
    measures = _measures(data)
    cutoff_keys: list[str] = []
    for entry in _methods(data).values():
        for key in entry.get("coverage") or {}:
            if key not in cutoff_keys:
                cutoff_keys.append(key)
    header = ["method", "scale"]
    header += [f"{m} (95% interval)" for m in measures]
    header += [f"Coverage{k}" for k in cutoff_keys]
    header += ["p50 ms", "p95 ms", "$ / 1,000 queries"]
    rows, notes = [], []
    for name, entry in _methods(data).items():
        if not entry.get("available"):
            notes.append(f"{name}: did not run: {entry.get('error')}")
            continue
        mark = " †" if entry.get("fallback_queries") else ""
        row = [name + mark, str(entry.get("scale") or "–")]
        ivs = _intervals(data, name, entry)
        metrics = entry.get("metrics") or {}
        for m in measures:
            row.append(f"{_num(metrics.get(m))} {_ci(ivs.get(m), sign=False)}")
        cov = entry.get("coverage") or {}
        row += [_num(cov.get(k), 2) for k in cutoff_keys]
        lat = _latency(entry)
        cost = entry.get("cost") or {}
        row += [_num(lat.get("p50"), 1), _num(lat.get("p95"), 1), _money(cost.get("per_1000_queries"))]
        rows.append(row)
        if entry.get("metrics_note"):
            notes.append(f"† {name}: {entry['metrics_note']}.")
        elif entry.get("error"):
            notes.append(f"{name}: {entry['error']}")
        if cost.get("reason") and cost.get("per_1000_queries") is None and cost.get("basis"):
            notes.append(f"{name}: cost unknown: {cost['reason']}")
    return header, rows, notes


def _lift_rows(data: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    detail = (data.get("verdict_detail") or {}).get("methods") or {}
    header = ["reranker", "Δ nDCG@10", "95% interval", "p-value", "queries", "queries needed", "+p95 ms"]
    rows = [
        [
            name + (" †" if e.get("fallback_queries") else ""),
            _num(e.get("lift"), sign=True),
            _ci(e.get("ci")),
            _p(e.get("p")),
            str(e.get("queries", "–")),
            "–" if e.get("queries_needed") is None else f"{e['queries_needed']:,}",
            _num(e.get("added_p95_ms"), 1),
        ]
        for name, e in detail.items()
    ]
    return header, rows


def _query_rows(data: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    return [
        [
            _query_label(data, r["query"]),
            _num(r["first_stage"]),
            _num(r["method"]),
            _num(r["diff"], sign=True),
            f"{r['found']}/{r['relevant']}",
            str(r["reranker"]),
            str(r["retrieval"]),
            ", ".join(r.get("tags") or []) or "–",
        ]
        for r in rows
    ]


QUERY_HEADER = [
    "query",
    "first stage",
    "method",
    "Δ",
    "relevant in top 10",
    "ranked below 10 (reranker)",
    "not retrieved (first stage)",
    "tags",
]


def _tag_rows(data: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    by_tag = (data.get("per_query_analysis") or {}).get("by_tag") or {}
    header = ["tag", "method", "queries", "wins", "losses", "ties", "mean Δ", "95% interval"]
    rows = []
    for tag, methods in by_tag.items():
        for name, r in methods.items():
            rows.append(
                [
                    tag,
                    name,
                    str(r["queries"]),
                    str(r["wins"]),
                    str(r["losses"]),
                    str(r["ties"]),
                    _num(r.get("mean_diff"), sign=True),
                    _ci(r.get("ci")),
                ]
            )
    return header, rows


def _settings_rows(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    rows = [
        ("dataset", str(data.get("dataset", "–"))),
        ("queries", str(data.get("queries", "–"))),
        ("first stage", str(data.get("first_stage", "–"))),
        ("candidates per query (depth)", str(data.get("depth", "–"))),
    ]
    if data.get("max_queries") is not None:
        rows.append(("query limit", str(data["max_queries"])))
    for name, entry in _methods(data).items():
        if entry.get("label"):
            precision = f" · precision {entry['precision']}" if entry.get("precision") else ""
            rows.append((f"method {name}", str(entry["label"]) + precision))
    for key, value in (data.get("settings") or {}).items():
        if value in (None, {}, []):
            continue
        rows.append(
            (
                key.replace("_", " "),
                json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value),
            )
        )
    return rows


def _version_rows(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(k, v or "not installed") for k, v in (data.get("versions") or {}).items()]


# ---------------------------------------------------------------------------------------------
# HTML

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:2rem auto;
max-width:1100px;padding:0 1rem;color:#1d1d1f;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd;
padding-bottom:.2rem}h3{font-size:1rem;margin-top:1.2rem}
.muted{color:#666;font-size:.9rem}
.verdict{border-left:6px solid var(--c);background:#f6f6f7;padding:.8rem 1rem;margin:1rem 0}
.verdict .call{font-weight:700;color:var(--c);font-size:1.1rem}
.warn{border-left:6px solid #b26a00;background:#fff6e5;padding:.6rem 1rem;margin:1rem 0}
table{border-collapse:collapse;margin:.5rem 0;font-size:.88rem}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:right;vertical-align:top}
th{background:#f0f0f2}td:first-child,th:first-child{text-align:left}
td.text{text-align:left}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:.1rem 1rem;margin:.5rem 0}
dl.facts dt{font-weight:600}dl.facts dd{margin:0}
figure{margin:1rem 0}figcaption{font-weight:600;margin-bottom:.3rem}
details{margin:.5rem 0}
"""


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], text_cols: Sequence[int] = (0,)) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="text">{_e(c)}</td>' if i in text_cols else f"<td>{_e(c)}</td>"
            for i, c in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _pairs_table(rows: Sequence[tuple[str, str]]) -> str:
    return _table(["", ""], [list(r) for r in rows], text_cols=(0, 1)).replace(
        "<thead><tr><th></th><th></th></tr></thead>", ""
    )


def render_html(data: Mapping[str, Any], title: str | None = None) -> str:
    """The report as one self-contained HTML page (plotly's JavaScript inline, no network)."""
    check_report(data)
    import plotly.io as pio

    name = str(data.get("dataset", "evaluation"))
    title = title or f"Rerank Playground report: {name}"
    parts: list[str] = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="muted">{_e(data.get("queries", "?"))} queries · first stage {_e(data.get("first_stage", "?"))} '
        f"top {_e(data.get('depth', '?'))} · written {_e(datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC'))}</p>",
    ]

    call, text, facts = _verdict_lines(data)
    colour = _CALL_COLOURS.get(call or "", "#6b6b6b")
    parts.append(f'<h2>Verdict</h2><div class="verdict" style="--c:{colour}">')
    if call:
        parts.append(f'<div class="call">{_e(_CALL_TITLES.get(call, call))}</div>')
    parts.append(f"<p>{_e(text)}</p>")
    if facts:
        parts.append(
            '<dl class="facts">' + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts) + "</dl>"
        )
    parts.append("</div>")
    rules = (data.get("verdict_detail") or {}).get("rules")
    if rules:
        parts.append(f'<p class="muted">{_e(rules)}</p>')
    if data.get("coverage_warning"):
        parts.append(f'<div class="warn">{_e(data["coverage_warning"])}</div>')

    header, rows, notes = _method_rows(data)
    parts.append("<h2>Quality, latency and cost per method</h2>")
    parts.append(_table(header, rows, text_cols=(0, 1)))
    parts.extend(f'<p class="muted">{_e(n)}</p>' for n in notes)
    lh, lrows = _lift_rows(data)
    if lrows:
        parts.append("<h3>Each reranker against the first stage (nDCG@10, paired)</h3>")
        parts.append(_table(lh, lrows))

    figs = _figures(data)
    first = True
    fig_html: dict[str, str] = {}
    for caption, fig in figs:
        div = pio.to_html(
            fig,
            include_plotlyjs=first,  # the library once, inline: no CDN
            full_html=False,
            config={"displaylogo": False, "responsive": True},
        )
        first = False
        fig_html[caption] = f'<figure class="plot"><figcaption>{_e(caption)}</figcaption>{div}</figure>'

    for caption in [c for c in fig_html if c.startswith("Quality")]:
        parts.append(fig_html.pop(caption))
    if "Depth sweep" in fig_html:
        parts.append("<h2>Depth sweep</h2>")
        parts.append(fig_html.pop("Depth sweep"))

    pqa = data.get("per_query_analysis") or {}
    if pqa.get("methods"):
        parts.append("<h2>Per-query wins and losses</h2>")
        parts.append(
            f'<p class="muted">Each reranker against the first stage on {_e(pqa.get("measure", "nDCG@10"))} '
            f"(a difference under 1e-9 is a tie). Every judged relevant document missing from the top "
            f"{_e(pqa.get('k', 10))} is put down to the first stage (not among its top {_e(pqa.get('depth'))}) "
            f"or to the reranker (handed to it, ranked below {_e(pqa.get('k', 10))}).</p>"
        )
        if "Where the relevant documents went" in fig_html:
            parts.append(fig_html.pop("Where the relevant documents went"))
        for name, result in pqa["methods"].items():
            rows_all = result.get("rows") or []
            parts.append(
                f"<h3>{_e(name)}: {result['wins']} wins, {result['losses']} losses, {result['ties']} ties</h3>"
            )
            key = f"Per-query differences: {name}"
            if key in fig_html:
                parts.append(fig_html.pop(key))
            wins = [r for r in rows_all if r["outcome"] == "win"][:TOP_QUERIES]
            losses = [r for r in reversed(rows_all) if r["outcome"] == "loss"][:TOP_QUERIES]
            if wins:
                parts.append(
                    f"<p><b>Largest wins</b></p>{_table(QUERY_HEADER, _query_rows(data, wins), (0, 7))}"
                )
            if losses:
                parts.append(
                    f"<p><b>Largest losses</b></p>{_table(QUERY_HEADER, _query_rows(data, losses), (0, 7))}"
                )
            parts.append(
                f"<details><summary>All {len(rows_all)} queries, sorted by difference</summary>"
                f"{_table(QUERY_HEADER, _query_rows(data, rows_all), (0, 7))}</details>"
            )
        th, trows = _tag_rows(data)
        if trows:
            parts.append("<h3>By query tag</h3>" + _table(th, trows, text_cols=(0, 1)))
    else:
        parts.append('<p class="muted">This report has no per-query analysis.</p>')

    hists = [c for c in fig_html if c.startswith("Score distribution")]
    if hists:
        parts.append(
            '<h2>Score distributions</h2><p class="muted">Every score each method gave, on its own scale '
            "(queries that fell back to the first-stage order are left out: their scores are the first "
            "stage's).</p>"
        )
        for caption in hists:
            parts.append(fig_html.pop(caption))
    parts.extend(fig_html.values())  # anything not placed above

    parts.append("<h2>Settings and dataset</h2>" + _pairs_table(_settings_rows(data)))
    versions = _version_rows(data)
    if versions:
        parts.append("<h2>Versions</h2>" + _pairs_table(versions))
    parts.append("</body></html>")
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------
# Markdown


def _md(text: Any) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(_md(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def render_markdown(data: Mapping[str, Any], title: str | None = None) -> str:
    """The report as Markdown (tables, no plots), for a pull request or an issue."""
    check_report(data)
    name = str(data.get("dataset", "evaluation"))
    out = [
        f"# {_md(title or f'Rerank Playground report: {name}')}",
        "",
        f"{data.get('queries', '?')} queries · first stage {_md(data.get('first_stage', '?'))} top "
        f"{data.get('depth', '?')}",
        "",
        "## Verdict",
        "",
    ]
    call, text, facts = _verdict_lines(data)
    if call:
        out.append(f"**{_md(_CALL_TITLES.get(call, call))}** (`{call}`)")
        out.append("")
    out.append(_md(text))
    if facts:
        out += ["", _md_table(["", ""], facts)]
    rules = (data.get("verdict_detail") or {}).get("rules")
    if rules:
        out += ["", f"_{_md(rules)}_"]
    if data.get("coverage_warning"):
        out += ["", f"> **Warning:** {_md(data['coverage_warning'])}"]
    header, rows, notes = _method_rows(data)
    out += ["", "## Quality, latency and cost per method", "", _md_table(header, rows)]
    out += [f"\n{_md(n)}" for n in notes]
    lh, lrows = _lift_rows(data)
    if lrows:
        out += ["", "### Each reranker against the first stage (nDCG@10, paired)", "", _md_table(lh, lrows)]
    sweep = (data.get("analysis") or {}).get("depth_sweep") or {}
    if sweep.get("methods"):
        depths = sweep.get("depths") or []
        srows = []
        for m, entry in sweep["methods"].items():
            values = {p["depth"]: p["value"] for p in entry.get("points") or []}
            srows.append([m, *[_num(values.get(d)) for d in depths], str(entry.get("knee") or "–")])
        out += ["", "## Depth sweep", "", _md_table(["method", *[f"@{d}" for d in depths], "knee"], srows)]
    pqa = data.get("per_query_analysis") or {}
    if pqa.get("methods"):
        out += ["", "## Per-query wins and losses", ""]
        for m, result in pqa["methods"].items():
            att = result.get("attribution") or {}
            out += [
                f"### {_md(m)}: {result['wins']} wins, {result['losses']} losses, {result['ties']} ties",
                "",
                f"Relevant documents: {att.get('found', 0)} in the top {pqa.get('k', 10)}, "
                f"{att.get('reranker', 0)} ranked below it by the reranker, {att.get('retrieval', 0)} not "
                f"retrieved by the first stage at depth {pqa.get('depth')}.",
                "",
            ]
            rows_all = result.get("rows") or []
            wins = [r for r in rows_all if r["outcome"] == "win"][:TOP_QUERIES]
            losses = [r for r in reversed(rows_all) if r["outcome"] == "loss"][:TOP_QUERIES]
            if wins:
                out += ["Largest wins:", "", _md_table(QUERY_HEADER, _query_rows(data, wins)), ""]
            if losses:
                out += ["Largest losses:", "", _md_table(QUERY_HEADER, _query_rows(data, losses)), ""]
        th, trows = _tag_rows(data)
        if trows:
            out += ["### By query tag", "", _md_table(th, trows)]
    dist_rows = []
    for m, entry in _methods(data).items():
        d = entry.get("score_distribution")
        if d:
            q = d.get("quantiles") or {}
            dist_rows.append(
                [
                    m,
                    str(d.get("scale")),
                    str(d.get("scores")),
                    *[_num(q.get(k)) for k in ("p5", "p50", "p95")],
                ]
            )
    if dist_rows:
        out += [
            "",
            "## Score distributions",
            "",
            _md_table(["method", "scale", "scores", "p5", "p50", "p95"], dist_rows),
        ]
    out += ["", "## Settings and dataset", "", _md_table(["", ""], _settings_rows(data))]
    versions = _version_rows(data)
    if versions:
        out += ["", "## Versions", "", _md_table(["", ""], versions)]
    return "\n".join(out) + "\n"


def render(data: Mapping[str, Any], fmt: str = "html") -> str:
    """An evaluation report, or a Compare page comparison (``"kind": "comparison"``), as HTML or Markdown."""
    from rerank_core.compare_report import is_comparison, render_comparison_html, render_comparison_markdown

    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}: use one of {', '.join(FORMATS)}")
    if is_comparison(data):
        return render_comparison_html(data) if fmt == "html" else render_comparison_markdown(data)
    return render_html(data) if fmt == "html" else render_markdown(data)


def format_for(output: str | Path, fmt: str | None = None) -> str:
    """The format asked for, or the output's suffix (``.md`` -> md, anything else -> html)."""
    if fmt:
        return fmt
    return "md" if Path(output).suffix.lower() in (".md", ".markdown") else "html"


def write_report(input_path: str | Path, output_path: str | Path, fmt: str | None = None) -> Path:
    """Read a report JSON and write it as HTML or Markdown; returns the output path."""
    data = load_report(input_path)
    out = Path(output_path)
    text = render(data, format_for(out, fmt))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out
