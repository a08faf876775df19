"""Tables and plotly figures of the Benchmark page, built from a :class:`rerank_core.benchmark.Benchmark`.

Nothing here computes a metric: every number comes from the benchmark object (which comes from
``run_evaluation`` and ``rerank_core.analysis``). Labels shown in plots go through
:func:`ui.render.plot_label` because plotly reads a few HTML tags in text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rerank_core.benchmark import KEY_MEASURE, Benchmark
from rerank_core.evaluation import FIRST_STAGE, RERANKER
from ui.render import FIRST_STAGE_COLOUR, PALETTE, plot_label

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


def table_rows(bench: Benchmark) -> list[dict]:
    """One row per available method: each measure with its 95% interval, the paired test, latency."""
    rows = []
    for name, s in bench.summaries.items():
        if not s.available:
            continue
        row: dict = {"method": name, "kind": "first stage" if s.kind == FIRST_STAGE else "reranker"}
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
        rows.append(row)
    return rows


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
    """nDCG@10 (with its 95% interval) against p50 latency per query, one point per method.

    A reranker's latency is the whole pipeline (first stage + reranking), what a user waits for."""
    import plotly.graph_objects as go

    pts = _quality_latency(bench)
    col = colours(bench)
    fig = go.Figure()
    for name, x, p95, y, low, high in pts:
        fig.add_trace(
            go.Scatter(
                x=[x],
                y=[y],
                mode="markers+text",
                name=plot_label(name),
                text=[plot_label(name)],
                textposition="top center",
                cliponaxis=False,
                marker=dict(size=13, color=col[name], line=dict(width=1, color="#0f172a")),
                error_y=dict(
                    type="data", symmetric=False, array=[high - y], arrayminus=[y - low], thickness=1.2
                ),
                hovertemplate=(
                    f"{plot_label(name)}<br>{KEY_MEASURE} %{{y:.3f}} [{low:.3f}, {high:.3f}]"
                    f"<br>p50 %{{x:,.1f}} ms · p95 {p95:,.1f} ms<extra></extra>"
                ),
            )
        )
    xs = [p[1] for p in pts if p[1] > 0]
    log_x = bool(xs) and max(xs) / min(xs) > LOG_X_RATIO
    fig.update_layout(
        height=380,
        margin=dict(l=10, r=10, t=30, b=10),
        showlegend=False,
        xaxis_title="p50 latency per query (ms, first stage + reranking)" + (" · log scale" if log_x else ""),
        yaxis_title=f"{KEY_MEASURE} (95% interval)",
    )
    if log_x:
        fig.update_xaxes(type="log", dtick=1)  # label powers of ten only (plotly's 2 and 5 read as values)
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


def verdict_lines(bench: Benchmark) -> list[str]:
    """One plain sentence per reranker: its measured lift, whether it is significant, the added p95."""
    fs = bench.summaries.get(bench.report.first_stage)
    if fs is None or not fs.available:
        return []
    base = fs.intervals[KEY_MEASURE].mean
    lines = []
    for name, s in bench.summaries.items():
        if s.kind != RERANKER or not s.available or s.latency is None:
            continue
        lift = s.intervals[KEY_MEASURE].mean - base
        sig = ""
        if s.paired is not None:
            sig = (
                f" (p = {s.paired.p_value:.3f}, significant at 5%)"
                if s.paired.significant()
                else f" (p = {s.paired.p_value:.3f}: not distinguishable from chance on {s.paired.n} queries)"
            )
        lines.append(
            f"{name}: {lift:+.3f} {KEY_MEASURE}{sig}, +{s.latency['p95']:,.0f} ms p95 on top of the first stage"
        )
    return lines


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
