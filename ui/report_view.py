"""Report buttons: a report to share from the Benchmark page (the evaluation with its analysis) and from
the Compare page (the comparison in view), as one self-contained HTML file or as Markdown.

The files are made when the button is clicked (Streamlit calls the data callable then), from the JSON
the page keeps, with :func:`rerank_core.report.render`, the code of ``python -m rerank_core report``.
The Benchmark's JSON is made once per run and kept (it reruns bootstraps).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import streamlit as st

from rerank_core.compare import Comparison
from rerank_core.compare_report import comparison_report
from rerank_core.report import render
from ui import keys


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")[:60] or "report"


def report_files(data: Mapping[str, Any]) -> dict[str, Callable[[], str]]:
    """``{"html": ..., "md": ...}``: callables that render ``data`` (called when a button is clicked)."""
    return {"html": lambda: render(data, "html"), "md": lambda: render(data, "md")}


def _buttons(data: Mapping[str, Any], name: str, html_key: str, md_key: str, what: str) -> None:
    files = report_files(data)
    left, right, _ = st.columns([1, 1, 2])
    left.download_button(
        "Report (HTML)",
        files["html"],
        file_name=f"{name}.html",
        mime="text/html",
        icon=":material/description:",
        key=html_key,
        on_click="ignore",
        help=f"{what} as one HTML file with its plots, for people who will not open the app (opens offline).",
    )
    right.download_button(
        "Report (Markdown)",
        files["md"],
        file_name=f"{name}.md",
        mime="text/markdown",
        icon=":material/article:",
        key=md_key,
        on_click="ignore",
        help=f"{what} as Markdown tables, for a pull request or an issue.",
    )


def benchmark_buttons(data: Mapping[str, Any]) -> None:
    """The Benchmark's report buttons, from its kept JSON (``Benchmark.to_json()``)."""
    _buttons(
        data,
        f"rerank-report-{_safe(str(data.get('dataset', 'benchmark')))}",
        keys.BENCH_REPORT_HTML,
        keys.BENCH_REPORT_MD,
        "The verdict, the tables with intervals, the depth sweep, the per-query wins and losses and the settings",
    )


def comparison_buttons(comparison: Comparison, **fields: Any) -> dict[str, Any]:
    """The Compare page's report buttons for the comparison in view; returns its JSON
    (:func:`rerank_core.compare_report.comparison_report` with ``fields``)."""
    data = comparison_report(comparison, **fields)
    json.dumps(data, allow_nan=False)  # a comparison that cannot be written fails here, not on click
    st.markdown("##### Share")
    _buttons(
        data,
        f"rerank-comparison-{_safe(comparison.query)}",
        keys.CMP_REPORT_HTML,
        keys.CMP_REPORT_MD,
        "This query's orders, live metrics, coverage, latency and agreement",
    )
    return data
