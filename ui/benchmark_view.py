"""Tables and plotly figures of the Benchmark page, built from a :class:`rerank_core.benchmark.Benchmark`.

Nothing here computes a metric: every number comes from the benchmark object (which comes from
``run_evaluation`` and ``rerank_core.analysis``). Labels shown in plots go through
:func:`ui.render.plot_label` because plotly reads a few HTML tags in text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from rerank_core.analysis import p_text, signed
from rerank_core.answers import coverages, method_costs
from rerank_core.benchmark import KEY_MEASURE, Benchmark
from rerank_core.coverage import coverage_table
from rerank_core.distributions import ScoreHistogram
from rerank_core.evaluation import FIRST_STAGE, RERANKER
from rerank_core.per_query import WinLoss
from rerank_core.types import MethodSpec
from ui import keys
from ui.render import FIRST_STAGE_COLOUR, PALETTE, plot_label

FALLBACK_MARK = " †"
COVERAGE_CUTOFFS = (5, 10, 50)

#: a latency spread (max / min) beyond which the scatter uses a log x axis
LOG_X_RATIO = 20.0


def colours(bench: Benchmark) -> dict[str, str]:
    """A stable colour per method: the first stage slate, the others from the palette in table order."""
    out: dict[str, str] = {}
    i = 0
    for name in bench.report.methods:
        if name == bench.report.first_stage:
            out[name] = FIRST_STAGE_COLOUR
        else:
            out[name] = PALETTE[i % len(PALETTE)]
            i += 1
    return out


def _ci(iv) -> str:
    return f"[{iv.low:.3f}, {iv.high:.3f}]"


def display_name(bench: Benchmark, name: str) -> str:
    """A method's name as the table shows it: marked when some of its queries fell back."""
    s = bench.summaries.get(name)
    return name + FALLBACK_MARK if s is not None and s.marked else name


def table_rows(bench: Benchmark) -> list[dict]:
    """One row per available method: each measure with its 95% interval, the paired test, latency,
    Coverage@k at the measures' cutoffs, cost per 1,000 queries and the fallback count (a method with
    fallbacks is marked with † after its name)."""
    rep = bench.report
    costs = method_costs(rep)
    rows = []
    for name, s in bench.summaries.items():
        if not s.available:
            continue
        row: dict = {
            "method": display_name(bench, name),
            "kind": "first stage" if s.kind == FIRST_STAGE else "reranker",
        }
        for measure in bench.measures:
            iv = s.intervals.get(measure)
            row[measure] = iv.mean if iv else None
            row[f"{measure} 95% CI"] = _ci(iv) if iv else ""
        if s.paired is not None:
            row[f"Δ {KEY_MEASURE} vs first stage"] = s.paired.diff_mean
            row["p-value"] = s.paired.p_value
        else:
            row[f"Δ {KEY_MEASURE} vs first stage"] = None
            row["p-value"] = None
        lat = s.latency or {}
        row["p50 ms"] = lat.get("p50")
        row["p95 ms"] = lat.get("p95")
        row["p99 ms"] = lat.get("p99")
        row["pipeline p95 ms"] = (
            (s.pipeline_latency or {}).get("p95") if s.kind == RERANKER else lat.get("p95")
        )
        row["model load s"] = s.model_load_s
        m = rep.methods[name]
        for key, value in coverage_table(m.run, rep.qrels, COVERAGE_CUTOFFS).items():
            row[f"Coverage{key}"] = value
        cost = costs.get(name)
        row["$ / 1,000 queries"] = cost.per_1000_queries if cost is not None else None
        row["fell back"] = s.fallback_queries or None
        rows.append(row)
    return rows


def table_notes(bench: Benchmark) -> list[str]:
    """What the table's marks mean: fallbacks per method, and why a cost is missing."""
    notes = [f"† {name}: {s.metrics_note}." for name, s in bench.summaries.items() if s.metrics_note]
    for name, cost in method_costs(bench.report).items():
        if cost.per_1000_queries is None and cost.basis:
            notes.append(f"{name}: cost unknown: {cost.reason}.")
        elif cost.per_1000_queries is not None:
            notes.append(
                f"{name}: ${cost.per_1000_queries:,.4f} per 1,000 queries ({cost.basis}; {cost.queries} queries)."
            )
    return notes


def coverage_warning(bench: Benchmark) -> str | None:
    """The low-coverage warning of this comparison at k = 10 (the report's rule)."""
    from rerank_core.coverage import coverage_warning as warning

    cov = coverages(bench.report)
    return warning(cov, 10) if cov else None


def unavailable_rows(bench: Benchmark) -> list[dict]:
    return [
        {"method": name, "why it did not run": s.error or "unknown"}
        for name, s in bench.summaries.items()
        if not s.available
    ]


def partial_failures(bench: Benchmark) -> list[tuple[str, str]]:
    """Methods that ran but with some failed or fallback queries (their error text says how many)."""
    return [(name, s.error) for name, s in bench.summaries.items() if s.available and s.error]


def _quality_latency(bench: Benchmark) -> list[tuple[str, float, float, float, float, float]]:
    """(method, x latency ms, p95 ms, quality, low, high) for every available method."""
    points = []
    for name, s in bench.summaries.items():
        if not s.available or s.latency is None or KEY_MEASURE not in s.intervals:
            continue
        lat = s.pipeline_latency if (s.kind == RERANKER and s.pipeline_latency) else s.latency
        iv = s.intervals[KEY_MEASURE]
        points.append((name, lat["p50"], lat["p95"], iv.mean, iv.low, iv.high))
    return points


def scatter_figure(bench: Benchmark):
    """nDCG@10 (with its 95% interval) against p50 latency per query, one point per method; with a price
    configured, a second panel puts the same points against cost per 1,000 queries.

    A reranker's latency is the whole pipeline (first stage + reranking), what a user waits for; a
    method with fallbacks is labelled so."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    pts = _quality_latency(bench)
    col = colours(bench)
    costs = {n: c.per_1000_queries for n, c in method_costs(bench.report).items()}
    with_cost = any(costs.get(p[0]) is not None for p in pts)
    fig = make_subplots(
        rows=1,
        cols=2 if with_cost else 1,
        shared_yaxes=True,
        horizontal_spacing=0.06,
        subplot_titles=["latency", "cost"] if with_cost else None,
    )
    for name, x, p95, y, low, high in pts:
        label = plot_label(display_name(bench, name))
        err = dict(type="data", symmetric=False, array=[high - y], arrayminus=[y - low], thickness=1.2)
        marker = dict(size=13, color=col[name], line=dict(width=1, color="#0f172a"))
        fig.add_trace(
            go.Scatter(
                x=[x],
                y=[y],
                mode="markers+text",
                name=plot_label(name),
                text=[label],
                textposition="top center",
                cliponaxis=False,
                marker=marker,
                error_y=err,
                hovertemplate=(
                    f"{label}<br>{KEY_MEASURE} %{{y:.3f}} [{low:.3f}, {high:.3f}]"
                    f"<br>p50 %{{x:,.1f}} ms · p95 {p95:,.1f} ms<extra></extra>"
                ),
            ),
            row=1,
            col=1,
        )
        cost = costs.get(name)
        if with_cost and cost is not None:
            fig.add_trace(
                go.Scatter(
                    x=[cost],
                    y=[y],
                    mode="markers+text",
                    name=plot_label(f"{name} (cost)"),
                    text=[label],
                    textposition="top center",
                    cliponaxis=False,
                    marker={**marker, "symbol": "diamond"},
                    error_y=err,
                    hovertemplate=(
                        f"{label}<br>{KEY_MEASURE} %{{y:.3f}} [{low:.3f}, {high:.3f}]"
                        "<br>$%{x:,.4f} per 1,000 queries<extra></extra>"
                    ),
                ),
                row=1,
                col=2,
            )
    xs = [p[1] for p in pts if p[1] > 0]
    log_x = bool(xs) and max(xs) / min(xs) > LOG_X_RATIO
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=30, b=10), showlegend=False)
    fig.update_xaxes(
        title_text="p50 latency per query (ms, first stage + reranking)" + (" · log scale" if log_x else ""),
        row=1,
        col=1,
    )
    fig.update_yaxes(title_text=f"{KEY_MEASURE} (95% interval)", row=1, col=1)
    if log_x:  # label powers of ten only (plotly's 2 and 5 read as values)
        fig.update_xaxes(type="log", dtick=1, row=1, col=1)
    if with_cost:
        fig.update_xaxes(title_text="$ per 1,000 queries", rangemode="tozero", row=1, col=2)
    return fig


def sweep_figure(bench: Benchmark):
    """nDCG@10 against the number of reranked candidates per reranker, the knee marked."""
    import plotly.graph_objects as go

    col = colours(bench)
    fig = go.Figure()
    fs = bench.summaries.get(bench.report.first_stage)
    if fs is not None and fs.available and KEY_MEASURE in fs.intervals:
        fig.add_hline(
            y=fs.intervals[KEY_MEASURE].mean,
            line_dash="dot",
            line_color=FIRST_STAGE_COLOUR,
            annotation_text=plot_label(f"{bench.report.first_stage} alone"),
            annotation_position="bottom right",
        )
    for name, points in bench.sweeps.items():
        fig.add_trace(
            go.Scatter(
                x=[p.depth for p in points],
                y=[p.value for p in points],
                mode="lines+markers",
                name=plot_label(name),
                line=dict(color=col.get(name, PALETTE[0]), width=2),
                hovertemplate=f"{plot_label(name)}: top %{{x}} reranked → {KEY_MEASURE} %{{y:.3f}}<extra></extra>",
            )
        )
        knee = bench.knees.get(name)
        value = next((p.value for p in points if p.depth == knee), None)
        if knee is not None and value is not None:
            fig.add_trace(
                go.Scatter(
                    x=[knee],
                    y=[value],
                    mode="markers+text",
                    text=[f"knee: {knee}"],
                    textposition="top center",
                    cliponaxis=False,
                    name=plot_label(f"{name} knee"),
                    marker=dict(symbol="star", size=16, color=col.get(name, PALETTE[0]), line=dict(width=1)),
                    hovertemplate=f"knee of {plot_label(name)}: {knee} candidates<extra></extra>",
                    showlegend=False,
                )
            )
    fig.update_layout(
        height=380,
        margin=dict(l=10, r=10, t=30, b=10),
        xaxis_title="candidates reranked (first stage's top d)",
        yaxis_title=KEY_MEASURE,
        legend=dict(orientation="h", y=-0.2),
    )
    if bench.sweep_depths and bench.sweep_depths[-1] / max(bench.sweep_depths[0], 1) > 8:
        fig.update_xaxes(
            type="log", tickvals=bench.sweep_depths, ticktext=[str(d) for d in bench.sweep_depths]
        )
    return fig


def policy_figure(bench: Benchmark):
    """Quality against mean latency of "rerank only when the first stage is unsure", per reranker."""
    import plotly.graph_objects as go

    col = colours(bench)
    fig = go.Figure()
    for name, points in bench.policies.items():
        labels = [
            "never rerank"
            if p.threshold == 0
            else "always rerank"
            if math.isinf(p.threshold)
            else f"margin < {p.threshold:.3f}"
            for p in points
        ]
        ends = [
            "first stage only" if i == 0 else "always rerank" if i == len(points) - 1 else ""
            for i in range(len(points))
        ]
        fig.add_trace(
            go.Scatter(
                x=[p.mean_latency_ms for p in points],
                y=[p.mean_metric for p in points],
                mode="lines+markers+text",
                text=ends,
                textposition=["bottom right"] + ["top center"] * (len(points) - 2) + ["top left"],
                cliponaxis=False,
                name=plot_label(name),
                line=dict(color=col.get(name, PALETTE[0]), width=2),
                customdata=[[lab, p.share_reranked * 100] for lab, p in zip(labels, points, strict=True)],
                hovertemplate=(
                    f"{plot_label(name)}: %{{customdata[0]}}<br>reranks %{{customdata[1]:.0f}}% of queries"
                    f"<br>{KEY_MEASURE} %{{y:.3f}} · mean %{{x:,.1f}} ms<extra></extra>"
                ),
            )
        )
    fig.update_layout(
        height=380,
        margin=dict(l=10, r=10, t=30, b=10),
        xaxis_title="mean latency per query (ms)",
        yaxis_title=f"mean {KEY_MEASURE}",
        legend=dict(orientation="h", y=-0.2),
        showlegend=True,
    )
    return fig


def verdict_facts(bench: Benchmark) -> list[tuple[str, str]]:
    """The verdict's numbers (``verdict.to_json()``: call, method, lift, interval, p, queries needed) as
    (label, value) pairs for the page."""
    v = bench.verdict
    if v is None:
        return []
    data = v.to_json()
    ci = data["ci"]
    return [
        ("call", data["call"]),
        ("method", data["method"] or "–"),
        (f"{KEY_MEASURE} lift", "–" if data["lift"] is None else signed(data["lift"])),
        ("95% interval", "–" if ci is None else f"{signed(ci[0])} to {signed(ci[1])}"),
        ("p (randomisation)", "–" if data["p"] is None else p_text(data["p"]).removeprefix("p ")),
        ("queries needed", "–" if data["queries_needed"] is None else f"{data['queries_needed']:,}"),
    ]


def verdict_lines(bench: Benchmark) -> list[str]:
    """One plain sentence per reranker: its lift with the 95% interval the verdict uses, the paired
    test's p, the queries a clear answer would need and the added p95 (the same numbers as the verdict,
    so the bullets can never contradict the headline)."""
    if bench.verdict is None:
        return []
    lines = []
    for name, e in bench.verdict.estimates.items():
        where = (
            "above zero" if e.clearly_positive else "below zero" if e.clearly_negative else "includes zero"
        )
        parts = [
            f"{name}: {signed(e.lift)} {KEY_MEASURE}, 95% interval {signed(e.ci_low)} to {signed(e.ci_high)} "
            f"({where}), {p_text(e.p_value)} on {e.n} queries"
        ]
        if e.queries_needed is not None and not e.clearly_positive:
            parts.append(f"about {e.queries_needed:,} queries would tell it from zero")
        if e.added_p95_ms is not None:
            parts.append(f"+{e.added_p95_ms:,.0f} ms p95 on top of the first stage")
        if e.fallback_queries:
            parts.append(f"{e.fallback_queries} queries fell back to the first-stage order")
        lines.append("; ".join(parts))
    return lines


# -- per-query wins and losses ---------------------------------------------------------------------------


def compare_link(base: str, query: str, bench: Benchmark, method: str, corpus_id: str, k: int = 10) -> str:
    """The Compare page's URL showing ``query`` with the benchmark's first stage, depth and ``method``
    (its model in ``model_<name>``), on the corpus ``corpus_id``."""
    spec = MethodSpec.parse(method)
    params: list[tuple[str, str]] = [
        (keys.CORPUS, corpus_id),
        (keys.Q, query),
        (keys.FIRST_STAGE, bench.report.first_stage),
        (keys.DEPTH, str(bench.report.depth)),
        (keys.SHOW, str(k)),
        (keys.METHODS, spec.name),
    ]
    if spec.model:
        params.append((keys.model_key(spec.name), spec.model))
    return f"{base}?{urlencode(params)}"


def compare_base(page_url: str | None, page_path: str = "benchmark") -> str:
    """The app's root URL (the Compare page) from this page's URL (``http://host/app/benchmark``)."""
    if not page_url:
        return "/"
    parts = urlsplit(page_url)
    path = parts.path
    if path.rstrip("/").endswith("/" + page_path):
        path = path.rstrip("/")[: -len(page_path)]
    return urlunsplit((parts.scheme, parts.netloc, path or "/", "", ""))


def per_query_rows(
    result: WinLoss,
    bench: Benchmark,
    *,
    base: str,
    corpus_id: str,
) -> list[dict[str, Any]]:
    """The queries of ``result`` sorted by difference (largest win first), each with where its relevant
    documents went and a link that opens it on the Compare page."""
    texts = bench.report.query_texts
    rows = []
    for q in result.queries:
        text = texts.get(q.query_id, "")
        rows.append(
            {
                "query": q.query_id,
                "text": text,
                "first stage": q.first_stage,
                "reranker": q.method,
                "Δ": q.diff,
                "outcome": q.outcome,
                "relevant": q.relevant,
                "in top 10": len(q.found),
                "ranked below 10 (reranker)": len(q.reranker),
                "not retrieved (first stage)": len(q.retrieval),
                "missed by the reranker": ", ".join(q.reranker),
                "missed by retrieval": ", ".join(q.retrieval),
                "tags": ", ".join(q.tags),
                "open": compare_link(base, text, bench, result.method, corpus_id) if text else None,
            }
        )
    return rows


def per_query_figure(result: WinLoss, texts: Mapping[str, str]):
    """The per-query differences, sorted, wins green and losses red."""
    import plotly.graph_objects as go

    qs = result.queries
    colour = ["#16a34a" if q.diff > 0 else "#dc2626" if q.diff < 0 else "#94a3b8" for q in qs]
    fig = go.Figure(
        go.Bar(
            x=list(range(1, len(qs) + 1)),
            y=[q.diff for q in qs],
            marker_color=colour,
            customdata=[[q.query_id, plot_label(texts.get(q.query_id, "")[:80])] for q in qs],
            hovertemplate="query %{customdata[0]}: %{customdata[1]}<br>Δ %{y:+.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        height=260,
        margin=dict(l=10, r=10, t=10, b=10),
        xaxis_title=f"queries, sorted by difference ({result.wins} wins, {result.losses} losses, {result.ties} ties)",
        yaxis_title=f"Δ {result.measure}",
    )
    return fig


def tag_rows(tables: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """The per-tag table (``answers.tag_tables``) as rows."""
    rows = []
    for tag, by_method in tables.items():
        for name, r in by_method.items():
            ci = r.get("ci") or [None, None]
            rows.append(
                {
                    "tag": tag,
                    "method": name,
                    "queries": r["queries"],
                    "wins": r["wins"],
                    "losses": r["losses"],
                    "ties": r["ties"],
                    "mean Δ": r["mean_diff"],
                    "95% interval": "–" if ci[0] is None else f"{signed(ci[0])} to {signed(ci[1])}",
                    "not retrieved (first stage)": r["attribution"]["retrieval"],
                    "ranked below 10 (reranker)": r["attribution"]["reranker"],
                }
            )
    return rows


# -- score distributions ---------------------------------------------------------------------------------


def histogram_figure(hist: ScoreHistogram, colour: str):
    """A method's score distribution, the scale named on the x axis."""
    import plotly.graph_objects as go

    edges = hist.edges
    centres = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=True)]
    widths = [b - a for a, b in zip(edges[:-1], edges[1:], strict=True)]
    fig = go.Figure(
        go.Bar(
            x=centres,
            y=list(hist.counts),
            width=widths,
            marker_color=colour,
            hovertemplate="%{x:.4g}: %{y} scores<extra></extra>",
        )
    )
    for name in ("p50", "p95"):
        if name in hist.quantiles:
            fig.add_vline(
                x=hist.quantiles[name],
                line_dash="dot",
                line_color="#0f172a",
                annotation_text=name,
                annotation_position="top",
            )
    fig.update_layout(
        height=240,
        margin=dict(l=10, r=10, t=20, b=10),
        xaxis_title=f"score ({plot_label(hist.scale or 'scale not recorded')})",
        yaxis_title="documents",
        bargap=0.02,
    )
    return fig


def parse_depths(text: str) -> list[int]:
    """The sweep depths typed as ``10, 25, 50``; raises ValueError naming the bad entry."""
    out: list[int] = []
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = int(part)
        except ValueError:
            raise ValueError(f"{part!r} is not a whole number") from None
        if value < 1:
            raise ValueError(f"{value} is not a positive number of candidates")
        out.append(value)
    if not out:
        raise ValueError("give at least one depth, for example 10, 25, 50, 100, 200")
    return sorted(set(out))


def run_files_zip(bench: Benchmark) -> bytes:
    """Every available method's TREC run file, zipped (names as the evaluate command writes them)."""
    import io
    import tempfile
    import zipfile
    from pathlib import Path

    buf = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in bench.report.write_runs(Path(tmp)).values():
            zf.write(path, arcname=path.name)
    return buf.getvalue()


def describe_settings(bench: Benchmark, query_source: str) -> str:
    rep = bench.report
    limit = f", first {bench.max_queries}" if bench.max_queries else ""
    return (
        f"{rep.queries} queries ({query_source}{limit}) · first stage {rep.first_stage} · "
        f"top {rep.depth} candidates reranked · {len(rep.methods)} methods"
    )


def method_names(bench: Benchmark) -> Sequence[str]:
    return list(bench.report.methods)
