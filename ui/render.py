"""Rendering helpers: ranked columns, the latency chart, the agreement table, method notices.

Untrusted text (document titles and text, file names, model names typed by the user) is only ever
shown as text: HTML goes through :func:`esc` and Markdown through :func:`md_escape`. Result
columns are drawn with ``st.html`` (sanitised by the browser side, and no Markdown pass), after
escaping, so a document holding ``<script>`` shows those characters and runs nothing.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import streamlit as st

from rerank_core.compare import Comparison, dropouts, shown_rows
from rerank_core.types import Candidate, RankedItem, RerankResult

SNIPPET_CHARS = 170

# Colours per order, stable across reruns (first stage is always slate).
PALETTE = ["#4f46e5", "#0891b2", "#c026d3", "#ea580c", "#16a34a", "#dc2626", "#7c3aed", "#0d9488"]
FIRST_STAGE_COLOUR = "#64748b"

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|$~:&])")
_WS = re.compile(r"\s+")


def esc(text: object) -> str:
    """Text made safe for HTML: escaped, quotes included."""
    return html.escape(str(text), quote=True)


def esc_block(text: str) -> str:
    """Escaped text whose line breaks are kept."""
    return esc(text).replace("\r\n", "\n").replace("\n", "<br>")


def md_escape(text: object) -> str:
    """Text made literal for Streamlit Markdown (labels, captions, alerts)."""
    return _MD_SPECIAL.sub(r"\\\1", str(text)).replace("\n", " ")


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    flat = _WS.sub(" ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


# The page's colours, as CSS variables: light by default, dark when the system prefers it (Streamlit's theme
# follows the system too, see .streamlit/config.toml) or when the app's theme is dark (st.context.theme).
LIGHT = {
    "surface": "#ffffff",
    "surface-2": "#f8fafc",
    "border": "#e2e8f0",
    "text": "#0f172a",
    "text-2": "#475569",
    "text-3": "#64748b",
    "rank": "#334155",
    "chip-bg": "#e2e8f0",
    "chip-fg": "#334155",
    "lat-bg": "#e0e7ff",
    "lat-fg": "#3730a3",
    "score-bg": "#f1f5f9",
    "score-fg": "#1e293b",
    "same-bg": "#f1f5f9",
    "same-fg": "#64748b",
    "new-bg": "#2563eb",
    "new-fg": "#ffffff",
    "up-fg": "#14532d",
    "down-fg": "#7f1d1d",
    "hl": "#f59e0b",
    "hl-bg": "#fffbeb",
    "flag-bg": "#fef3c7",
    "flag-fg": "#92400e",
    "drop-bg": "#fef2f2",
    "drop-fg": "#7f1d1d",
    "drop-border": "#fecaca",
    "drop-strong": "#991b1b",
    "link": "#4f46e5",
    "live-bg": "#dcfce7",
    "live-fg": "#14532d",
    "mute-bg": "#f1f5f9",
    "mute-fg": "#64748b",
    "g3-bg": "#15803d",
    "g3-fg": "#ffffff",
    "g3-bar": "#15803d",
    "g2-bg": "#4ade80",
    "g2-fg": "#14532d",
    "g2-bar": "#4ade80",
    "g1-bg": "#fde68a",
    "g1-fg": "#78350f",
    "g1-bar": "#fbbf24",
    "g0-bg": "#fecaca",
    "g0-fg": "#7f1d1d",
    "g0-bar": "#f87171",
    "gs-bg": "#e2e8f0",
    "gs-fg": "#475569",
    "gs-bar": "#cbd5e1",
    "gx-bg": "#e0e7ff",
    "gx-fg": "#3730a3",
    "cov-bg": "#ecfeff",
    "cov-fg": "#155e75",
    "llm-bg": "#ede9fe",
    "llm-fg": "#5b21b6",
    "llm-border": "#a78bfa",
}
DARK = {
    "surface": "#161b26",
    "surface-2": "#1c2331",
    "border": "#323b4e",
    "text": "#e5e7eb",
    "text-2": "#aab4c5",
    "text-3": "#8b95a8",
    "rank": "#cbd5e1",
    "chip-bg": "#2b3345",
    "chip-fg": "#d5dbe5",
    "lat-bg": "#312e81",
    "lat-fg": "#c7d2fe",
    "score-bg": "#252d3d",
    "score-fg": "#e2e8f0",
    "same-bg": "#252d3d",
    "same-fg": "#aab4c5",
    "new-bg": "#3b82f6",
    "new-fg": "#ffffff",
    "up-fg": "#bbf7d0",
    "down-fg": "#fecaca",
    "hl": "#fbbf24",
    "hl-bg": "#3a2f12",
    "flag-bg": "#4a3712",
    "flag-fg": "#fde68a",
    "drop-bg": "#3a1719",
    "drop-fg": "#fecaca",
    "drop-border": "#7f1d1d",
    "drop-strong": "#fca5a5",
    "link": "#a5b4fc",
    "live-bg": "#14532d",
    "live-fg": "#bbf7d0",
    "mute-bg": "#252d3d",
    "mute-fg": "#aab4c5",
    "g3-bg": "#16a34a",
    "g3-fg": "#ffffff",
    "g3-bar": "#22c55e",
    "g2-bg": "#166534",
    "g2-fg": "#dcfce7",
    "g2-bar": "#4ade80",
    "g1-bg": "#854d0e",
    "g1-fg": "#fef3c7",
    "g1-bar": "#fbbf24",
    "g0-bg": "#7f1d1d",
    "g0-fg": "#fee2e2",
    "g0-bar": "#f87171",
    "gs-bg": "#334155",
    "gs-fg": "#e2e8f0",
    "gs-bar": "#64748b",
    "gx-bg": "#312e81",
    "gx-fg": "#e0e7ff",
    "cov-bg": "#164e63",
    "cov-fg": "#cffafe",
    "llm-bg": "#3b0764",
    "llm-fg": "#e9d5ff",
    "llm-border": "#a78bfa",
}
#: below this width (px) the comparison shows one order at a time (a method picker) instead of columns
NARROW_PX = 700
NARROW_PICKER = "rp-narrow-picker"  # the key of the picker's container


def _variables(colours: Mapping[str, str]) -> str:
    return " ".join(f"--rp-{name}: {value};" for name, value in colours.items())


def theme_css(theme: str | None) -> str:
    """The colour variables: for ``"light"`` or ``"dark"`` (the app's theme, when known), else light with a
    dark override when the system prefers dark."""
    if theme == "dark":
        return f":root {{{_variables(DARK)}}}"
    if theme == "light":
        return f":root {{{_variables(LIGHT)}}}"
    return (
        f":root {{{_variables(LIGHT)}}}\n@media (prefers-color-scheme: dark) {{:root {{{_variables(DARK)}}}}}"
    )


CSS = """
[data-testid="stMainBlockContainer"] {padding-top: 2.2rem;}
.rp-colhead {border-top: 4px solid var(--rp-c); background: var(--rp-surface-2); border-radius: 6px;
  padding: 8px 10px 6px 10px; margin-bottom: 6px; min-height: 120px;}
.rp-colhead .rp-name {font-weight: 700; font-size: 1.0rem; color: var(--rp-text); word-break: break-word;}
.rp-colhead .rp-label {font-size: 0.78rem; color: var(--rp-text-2); margin: 1px 0 4px 0; word-break: break-word;}
.rp-chip {display: inline-block; font-size: 0.72rem; padding: 1px 7px; border-radius: 999px;
  background: var(--rp-chip-bg); color: var(--rp-chip-fg); margin: 2px 4px 0 0; white-space: nowrap;}
.rp-chip.rp-lat {background: var(--rp-lat-bg); color: var(--rp-lat-fg);}
.rp-chip.rp-prec {font-family: ui-monospace, monospace; letter-spacing: -0.02em;}
.rp-row {display: flex; gap: 8px; padding: 7px 8px; border: 1px solid var(--rp-border); border-radius: 6px;
  margin-bottom: 6px; background: var(--rp-surface);}
.rp-row.rp-hl {border: 2px solid var(--rp-hl); background: var(--rp-hl-bg); box-shadow: 0 0 0 3px rgba(245,158,11,.18);}
.rp-rank {font-weight: 700; color: var(--rp-rank); min-width: 1.6rem; text-align: right; font-size: 0.95rem;}
.rp-body {flex: 1; min-width: 0;}
.rp-title {font-weight: 600; font-size: 0.86rem; color: var(--rp-text); line-height: 1.25; word-break: break-word;}
.rp-id {font-size: 0.7rem; color: var(--rp-text-3); font-family: ui-monospace, monospace; word-break: break-all;}
.rp-snip {font-size: 0.78rem; color: var(--rp-text-2); line-height: 1.3; margin-top: 2px; word-break: break-word;}
.rp-meta {margin-top: 4px; display: flex; flex-wrap: wrap; gap: 4px; align-items: center;}
.rp-score {font-family: ui-monospace, monospace; font-size: 0.74rem; color: var(--rp-score-fg);
  background: var(--rp-score-bg); padding: 0 6px; border-radius: 4px;}
.rp-mv {font-size: 0.72rem; font-weight: 700; padding: 0 6px; border-radius: 4px;}
.rp-mv.rp-same {color: var(--rp-same-fg); background: var(--rp-same-bg);}
.rp-mv.rp-new {color: var(--rp-new-fg); background: var(--rp-new-bg);}
.rp-flag {font-size: 0.68rem; padding: 0 6px; border-radius: 4px; background: var(--rp-flag-bg); color: var(--rp-flag-fg);}
.rp-row details {margin-top: 3px;}
.rp-row summary {font-size: 0.72rem; color: var(--rp-link); cursor: pointer;}
.rp-full {font-size: 0.78rem; color: var(--rp-score-fg); white-space: normal; max-height: 260px; overflow-y: auto;
  background: var(--rp-surface-2); padding: 6px; border-radius: 4px; margin-top: 3px; word-break: break-word;}
.rp-drop {font-size: 0.74rem; color: var(--rp-drop-fg); background: var(--rp-drop-bg);
  border: 1px dashed var(--rp-drop-border); border-radius: 6px; padding: 6px 8px; margin-top: 2px;}
.rp-drop b {color: var(--rp-drop-strong);}
.rp-unavail {border: 1px dashed var(--rp-border); border-radius: 6px; padding: 10px; background: var(--rp-surface-2);
  font-size: 0.8rem; color: var(--rp-rank);}
.rp-chip.rp-live {background: var(--rp-live-bg); color: var(--rp-live-fg); font-weight: 600;}
.rp-chip.rp-live.rp-none {background: var(--rp-mute-bg); color: var(--rp-mute-fg); font-weight: 400;}
.rp-chip.rp-cov {background: var(--rp-cov-bg); color: var(--rp-cov-fg);}
.rp-chip.rp-cov.rp-low {background: var(--rp-flag-bg); color: var(--rp-flag-fg); font-weight: 600;}
.rp-chip.rp-fell {background: var(--rp-flag-bg); color: var(--rp-flag-fg); font-weight: 600;}
.rp-grade.rp-gllm {background: var(--rp-llm-bg); color: var(--rp-llm-fg); font-weight: 600;
  border: 1px dashed var(--rp-llm-border);}
.rp-grade {font-size: 0.7rem; font-weight: 700; padding: 0 7px; border-radius: 999px; white-space: nowrap;}
.rp-grade.rp-g3 {background: var(--rp-g3-bg); color: var(--rp-g3-fg);}
.rp-grade.rp-g2 {background: var(--rp-g2-bg); color: var(--rp-g2-fg);}
.rp-grade.rp-g1 {background: var(--rp-g1-bg); color: var(--rp-g1-fg);}
.rp-grade.rp-g0 {background: var(--rp-g0-bg); color: var(--rp-g0-fg);}
.rp-grade.rp-gs {background: var(--rp-gs-bg); color: var(--rp-gs-fg); font-weight: 600;}
.rp-grade.rp-gx {background: var(--rp-gx-bg); color: var(--rp-gx-fg);}
.rp-row.rp-g3 {box-shadow: inset 4px 0 0 var(--rp-g3-bar);}
.rp-row.rp-g2 {box-shadow: inset 4px 0 0 var(--rp-g2-bar);}
.rp-row.rp-g1 {box-shadow: inset 4px 0 0 var(--rp-g1-bar);}
.rp-row.rp-g0 {box-shadow: inset 4px 0 0 var(--rp-g0-bar);}
.rp-row.rp-gs {box-shadow: inset 4px 0 0 var(--rp-gs-bar);}
.rp-row.rp-hl.rp-g3, .rp-row.rp-hl.rp-g2, .rp-row.rp-hl.rp-g1, .rp-row.rp-hl.rp-g0, .rp-row.rp-hl.rp-gs {
  box-shadow: 0 0 0 3px rgba(245,158,11,.18);}
/* a row with its grade buttons: one card, the buttons under the text */
[class*="st-key-rpcard-"] {border: 1px solid var(--rp-border); border-radius: 6px; background: var(--rp-surface);
  padding: 0 0 5px 0; margin-bottom: 0;}
[class*="st-key-rpcard-"] .rp-row {border: none; margin-bottom: 0; padding-bottom: 3px; border-radius: 6px 6px 0 0;}
[class*="st-key-rpcard-"] .rp-row.rp-hl {border: 2px solid var(--rp-hl);}
[class*="st-key-rpcard-"] [data-testid="stButtonGroup"] {padding-left: 2.35rem;}
[class*="st-key-rpcard-"] [data-testid="stButtonGroup"] button {min-height: 1.55rem; padding: 0 0.6rem;
  font-size: 0.75rem;}
[class*="st-key-rpcard-"] [data-testid="stButtonGroup"] button p {font-size: 0.75rem;}
/* the chosen grade filled with its badge colour, hovered or not (buttons: 0, 1, 2, 3, skip) */
[class*="st-key-lbl_grade-"] button[aria-checked="true"] {font-weight: 700;}
[class*="st-key-lbl_grade-"] button[aria-checked="true"]:nth-of-type(1) {
  background: var(--rp-g0-bg) !important; color: var(--rp-g0-fg) !important; border-color: var(--rp-g0-bar);}
[class*="st-key-lbl_grade-"] button[aria-checked="true"]:nth-of-type(2) {
  background: var(--rp-g1-bg) !important; color: var(--rp-g1-fg) !important; border-color: var(--rp-g1-bar);}
[class*="st-key-lbl_grade-"] button[aria-checked="true"]:nth-of-type(3) {
  background: var(--rp-g2-bg) !important; color: var(--rp-g2-fg) !important; border-color: var(--rp-g2-bar);}
[class*="st-key-lbl_grade-"] button[aria-checked="true"]:nth-of-type(4) {
  background: var(--rp-g3-bg) !important; color: var(--rp-g3-fg) !important; border-color: var(--rp-g3-bar);}
[class*="st-key-lbl_grade-"] button[aria-checked="true"]:nth-of-type(5) {
  background: var(--rp-gs-bg) !important; color: var(--rp-gs-fg) !important; border-color: var(--rp-gs-bar);}
/* the order picker is for narrow screens only */
@media (min-width: WIDEpx) {.st-key-PICKER {display: none;}}
""".replace("WIDE", str(NARROW_PX + 1)).replace("PICKER", NARROW_PICKER)


def inject_css() -> None:
    """The page's static stylesheet and its colours for the app's theme (no user data)."""
    try:
        theme = st.context.theme.type
    except Exception:  # noqa: BLE001 - not known yet (first run) or not available: follow the system
        theme = None
    st.html(f"<style>{theme_css(theme)}\n{CSS}</style>")


def column_key(index: int) -> str:
    """The key of the container that holds comparison column ``index`` (0: the first stage)."""
    return f"rpcol-c{index}"


def narrow_layout(shown: int, count: int) -> None:
    """On a screen narrower than :data:`NARROW_PX`, show only comparison column ``shown`` of ``count``, full
    width (the picker above chooses it); wider screens keep every column side by side."""
    hidden = ", ".join(
        f'[data-testid="stColumn"]:has(.st-key-{column_key(i)})' for i in range(count) if i != shown
    )
    row = f'[data-testid="stHorizontalBlock"]:has(> [data-testid="stColumn"] .st-key-{column_key(0)})'
    rules = f"{row} > [data-testid='stColumn'] {{flex: 1 1 100% !important; width: 100% !important; min-width: 100% !important;}}"
    if hidden:
        rules += f" {hidden} {{display: none !important;}}"
    st.html(f"<style>@media (max-width: {NARROW_PX}px) {{{rules}}}</style>")


# -- movement ---------------------------------------------------------------------------------------------


def movement_badge(row: RankedItem, k: int, *, baseline: bool = False) -> str:
    """▲n / ▼n coloured by magnitude, ``new`` for an entry from below the shown top k, ``=`` for no move."""
    if baseline:
        return ""
    if row.is_new(k):
        return f'<span class="rp-mv rp-new" title="was #{row.first_stage_rank} in the first stage">new ↑ from #{row.first_stage_rank}</span>'
    m = row.movement
    if m == 0:
        return '<span class="rp-mv rp-same" title="same place as in the first stage">=</span>'
    strength = min(abs(m), 12) / 12
    alpha = 0.18 + 0.82 * strength
    rgb = "22,163,74" if m > 0 else "220,38,38"
    fg = "#fff" if alpha > 0.55 else ("var(--rp-up-fg)" if m > 0 else "var(--rp-down-fg)")
    arrow = "▲" if m > 0 else "▼"
    return (
        f'<span class="rp-mv" style="background: rgba({rgb},{alpha:.2f}); color: {fg}" '
        f'title="first stage #{row.first_stage_rank}">{arrow}{abs(m)}</span>'
    )


def format_score(value: float) -> str:
    if math.isinf(value) or math.isnan(value):
        return "–"
    if abs(value) >= 1000 or (abs(value) < 0.001 and value != 0):
        return f"{value:.3g}"
    return f"{value:.3f}"


# -- columns ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    label: str
    scale: str
    colour: str
    latency_ms: float | None = None
    load_s: float | None = None
    baseline: bool = False
    live: str = ""  # this order's live metric from the user's labels, e.g. "nDCG@10 0.63"
    live_title: str = ""
    live_muted: bool = False  # nothing relevant labelled in this order's top k yet
    coverage: str = ""  # the share of the shown top k that is judged, e.g. "Coverage@10 70%"
    coverage_title: str = ""
    coverage_low: bool = False  # too few judgements to compare on
    fell_back: bool = False  # the order is the first stage's, kept after the method failed
    precision: str = ""  # the numeric path the scores came from (fp32, onnx-int8, ...); "" = not applicable
    precision_title: str = ""  # why (what ``auto`` chose, and on what grounds)


def precision_title(result: RerankResult) -> str:
    """The precision chip's tooltip: what the precision means, and what ``auto`` chose and why."""
    chosen = [n for n in result.notes if n.startswith("auto:")]
    return " ".join(["the numeric path these scores came from", *chosen])


def column_header(spec: ColumnSpec) -> str:
    chips = []
    if spec.fell_back:
        chips.append(
            '<span class="rp-chip rp-fell" title="the method failed: this is the first stage\'s order and '
            'scores">first-stage order and scores</span>'
        )
    chips.append(f'<span class="rp-chip" title="what the scores mean">{esc(spec.scale)}</span>')
    if spec.precision:
        why = spec.precision_title or "the numeric path these scores came from"
        chips.append(f'<span class="rp-chip rp-prec" title="{esc(why)}">{esc(spec.precision)}</span>')
    if spec.latency_ms is not None:
        chips.append(f'<span class="rp-chip rp-lat">query {spec.latency_ms:,.0f} ms</span>')
    if spec.load_s:
        chips.append(f'<span class="rp-chip">load {spec.load_s:,.1f} s</span>')
    if spec.live:
        cls = "rp-chip rp-live rp-none" if spec.live_muted else "rp-chip rp-live"
        chips.append(f'<span class="{cls}" title="{esc(spec.live_title)}">{esc(spec.live)}</span>')
    if spec.coverage:
        cls = "rp-chip rp-cov rp-low" if spec.coverage_low else "rp-chip rp-cov"
        chips.append(f'<span class="{cls}" title="{esc(spec.coverage_title)}">{esc(spec.coverage)}</span>')
    label = f'<div class="rp-label">{esc(spec.label)}</div>' if spec.label and spec.label != spec.name else ""
    return (
        f'<div class="rp-colhead" style="--rp-c: {spec.colour}">'
        f'<div class="rp-name">{esc(spec.name)}</div>{label}{"".join(chips)}</div>'
    )


# -- grades (the user's relevance labels) ------------------------------------------------------------------

Grades = Mapping[str, int | None]  # doc id -> grade (None = skipped); a missing id is unlabelled
LLMGrades = Mapping[str, tuple[str, int, str]]  # doc id -> (LLM judge, grade, rationale), shown apart
GradeControl = Callable[[str], object]  # draws the grading widget of one document
GRADE_WORDS = {0: "not relevant", 1: "partly", 2: "relevant", 3: "perfect"}


def grade_class(doc_id: str, grades: Grades | None) -> str:
    """``rp-g0``..``rp-g3``, ``rp-gs`` (skipped), ``rp-gx`` (an imported grade) or "" (unlabelled)."""
    if not grades or doc_id not in grades:
        return ""
    grade = grades[doc_id]
    if grade is None:
        return "rp-gs"
    return f"rp-g{grade}" if grade in GRADE_WORDS else "rp-gx"


def grade_badge(doc_id: str, grades: Grades | None) -> str:
    """A small badge with the stored grade of ``doc_id`` ("" when it has none)."""
    cls = grade_class(doc_id, grades)
    if not cls:
        return ""
    grade = grades[doc_id]  # type: ignore[index]
    if grade is None:
        text = "skipped"
    elif grade in GRADE_WORDS:
        text = f"{grade} · {GRADE_WORDS[grade]}"
    else:
        text = f"grade {grade} (imported)"
    return f'<span class="rp-grade {cls}" title="your label for this query">{esc(text)}</span>'


def llm_badge(doc_id: str, llm: LLMGrades | None) -> str:
    """A badge with an LLM judge's grade (its rationale on hover), apart from people's grades."""
    if not llm or doc_id not in llm:
        return ""
    judge, grade, rationale = llm[doc_id]
    title = f"{judge}: {rationale}" if rationale else judge
    return f'<span class="rp-grade rp-gllm" title="{esc(title)}">LLM {esc(grade)}</span>'


def row_html(
    row: RankedItem,
    cand: Candidate,
    k: int,
    *,
    highlighted: bool,
    baseline: bool,
    grades: Grades | None = None,
    llm: LLMGrades | None = None,
) -> str:
    title = cand.title.strip() or cand.doc_id
    flags = []
    if row.truncated:
        flags.append(
            '<span class="rp-flag" title="the model saw only the first part">truncated for this model</span>'
        )
    if row.flagged and not baseline:
        flags.append(
            '<span class="rp-flag" title="not the model\'s own judgement">kept first-stage place</span>'
        )
    cls = "rp-row rp-hl" if highlighted else "rp-row"
    graded = grade_class(row.doc_id, grades)
    if graded:
        cls += f" {graded}"
    return (
        f'<div class="{cls}" data-doc="{esc(row.doc_id)}">'
        f'<div class="rp-rank">{row.rank}</div>'
        f'<div class="rp-body">'
        f'<div class="rp-title">{esc(title)}</div>'
        f'<div class="rp-id">{esc(row.doc_id)}</div>'
        f'<div class="rp-snip">{esc(snippet(cand.text))}</div>'
        f'<div class="rp-meta">{grade_badge(row.doc_id, grades)}{llm_badge(row.doc_id, llm)}'
        f'<span class="rp-score" title="score">{esc(format_score(row.score))}</span>'
        f"{movement_badge(row, k, baseline=baseline)}{''.join(flags)}</div>"
        f'<details><summary>Full text</summary><div class="rp-full">{esc_block(cand.full_text)}</div></details>'
        f"</div></div>"
    )


def _dropped_html(comparison: Comparison, result: RerankResult, k: int) -> str:
    by_id = {c.doc_id: c for c in comparison.candidates}
    dropped = dropouts(comparison.first_stage.ids, result.ids, k)
    if not dropped:
        return ""
    items = "; ".join(
        f"#{by_id[d].first_stage_rank} {esc(snippet(by_id[d].title or d, 60))}" for d in dropped
    )
    return f'<div class="rp-drop"><b>Dropped out of the top {k}:</b> {items}</div>'


def column_html(
    spec: ColumnSpec,
    result: RerankResult,
    comparison: Comparison,
    k: int,
    highlight: str | None,
    grades: Grades | None = None,
    llm: LLMGrades | None = None,
) -> str:
    """A whole column (header, rows, drop-outs) as one HTML block, grades shown as badges."""
    by_id = {c.doc_id: c for c in comparison.candidates}
    rows = shown_rows(result.items, k)
    parts = [column_header(spec)]
    for row in rows:
        parts.append(
            row_html(
                row,
                by_id[row.doc_id],
                k,
                highlighted=row.doc_id == highlight,
                baseline=spec.baseline,
                grades=grades,
                llm=llm,
            )
        )
    if not spec.baseline:
        parts.append(_dropped_html(comparison, result, k))
    return f'<div class="rp-col">{"".join(parts)}</div>'


def draw_column(
    spec: ColumnSpec,
    result: RerankResult,
    comparison: Comparison,
    k: int,
    highlight: str | None,
    *,
    grades: Grades | None = None,
    control: GradeControl | None = None,
    key: str = "col",
    llm: LLMGrades | None = None,
) -> None:
    """Draw a column. With ``control``, every row is a card holding the row and its grading widget
    (``control(doc_id)``); without, the column is one HTML block. ``key`` must be unique per column.
    ``llm`` grades are shown as their own badges, never as people's."""
    if control is None:
        st.html(column_html(spec, result, comparison, k, highlight, grades, llm))
        return
    by_id = {c.doc_id: c for c in comparison.candidates}
    st.html(column_header(spec))
    for row in shown_rows(result.items, k):
        with st.container(key=f"rpcard-{key}-{row.rank}", gap=None):
            st.html(
                row_html(
                    row,
                    by_id[row.doc_id],
                    k,
                    highlighted=row.doc_id == highlight,
                    baseline=spec.baseline,
                    grades=grades,
                    llm=llm,
                )
            )
            control(row.doc_id)
    if not spec.baseline:
        dropped = _dropped_html(comparison, result, k)
        if dropped:
            st.html(dropped)


def is_unavailable(result: RerankResult | None) -> bool:
    """A method that produced no order at all (as opposed to a fallback order)."""
    return result is not None and not result.items and result.error is not None


_ERROR_TITLES = {
    "quota": "Quota reached",
    "rate-limit": "Too many runs this minute",
    "access-denied": "Not allowed",
    "model-not-found": "Model not available here",
    "missing-api-key": "API key needed",
    "unavailable": "Not available here",
    "invalid-method": "Invalid method or option",
    "config": "Configuration problem",
}


#: results that are not a method's failure: a limit reached, or the user's Stop (shown as information)
_NOT_FAILURES = {
    "quota": ":material/hourglass_top:",
    "rate-limit": ":material/hourglass_top:",
    "stopped": ":material/stop_circle:",
}
_ERROR_TITLES["stopped"] = "Stopped"


def stopped_result(spec: str) -> RerankResult:
    """The column of a method the user stopped before it ran."""
    from rerank_core.types import MethodError, ScoreScale

    return RerankResult(
        method=spec,
        scale=ScoreScale.LOGIT,
        error=MethodError(kind="stopped", message="Stopped before it ran.", hint="press Run them above"),
    )


def short_reason(message: str, limit: int = 110) -> str:
    """The gist of an error message for a narrow column (the full text sits in an expander)."""
    gist = message.split(": looked in", 1)[0]
    gist = re.split(r"(?<=[.;])\s", gist, maxsplit=1)[0]
    return snippet(gist, limit)


def option_label(cand: Candidate) -> str:
    """A plain-text label for a select box (select boxes show text as text)."""
    title = snippet(cand.title or cand.text, 70)
    return f"#{cand.first_stage_rank} · {title} ({cand.doc_id})"


def _model_of(spec: str, result: RerankResult | None) -> str:
    name = result.method if result is not None else spec
    return name.partition(":")[2]


def method_column(
    *,
    title: str,
    spec: str,
    result: RerankResult | None,
    comparison: Comparison,
    k: int,
    highlight: str | None,
    colour: str,
    blurb: str = "",
    tip: str = "",
    grades: Grades | None = None,
    control: GradeControl | None = None,
    live: tuple[str, str, bool] = ("", "", False),
    key: str = "col",
    coverage: tuple[str, str, bool] = ("", "", False),
    llm: LLMGrades | None = None,
) -> None:
    """One method's column: its order, a fallback warning, or why it cannot run and how to fix that.

    ``grades`` are shown as badges, ``control`` draws a grading widget per row (see :func:`draw_column`),
    ``live`` is the header's live-metric chip (text, tooltip, muted) and ``coverage`` its Coverage@k
    chip (text, tooltip, low). A method that fell back is titled so (:func:`fallback_title`), and its
    scores are the first stage's, under the first stage's scale."""
    model = _model_of(spec, result)
    if result is None:
        st.html(column_header(ColumnSpec(name=title, label=model or blurb, scale="running…", colour=colour)))
        return
    label = result.label or blurb
    if model and model not in label:
        label = f"{label} · {model}" if label else model
    spec_ = ColumnSpec(
        name=fallback_title(title) if result.fallback else title,
        label=label,
        scale=str(result.scale),
        colour=colour,
        latency_ms=result.latency_ms if result.items and not result.fallback else None,
        load_s=result.model_load_s,
        live=live[0],
        live_title=live[1],
        live_muted=live[2],
        coverage=coverage[0],
        coverage_title=coverage[1],
        coverage_low=coverage[2],
        fell_back=result.fallback,
        precision=result.precision if not result.fallback else "",
        precision_title=precision_title(result),
    )
    if is_unavailable(result):
        err = result.error
        assert err is not None
        st.html(
            column_header(ColumnSpec(name=title, label=model or blurb, scale="not run", colour="#cbd5e1"))
        )
        box = st.info if err.kind in _NOT_FAILURES else st.error
        box(
            f"**{_ERROR_TITLES.get(err.kind, 'Failed')}**  \n{md_escape(short_reason(err.message))}",
            icon=_NOT_FAILURES.get(err.kind, ":material/block:"),
        )
        with st.expander("Why, and how to fix"):
            st.caption(md_escape(err.message))
            if err.hint:
                st.caption(f"**How to fix:** {md_escape(err.hint)}")
            if tip:
                st.caption(tip)
        return
    if result.fallback and result.error is not None:
        st.warning(
            f"**Fell back to the first-stage order.** {md_escape(result.error.message)}",
            icon=":material/cloud_off:",
        )
    draw_column(spec_, result, comparison, k, highlight, grades=grades, control=control, key=key, llm=llm)


FELL_BACK = "fell back"


def fallback_title(title: str) -> str:
    """The title of a column whose method failed and kept the first-stage order."""
    return f"{title} ({FELL_BACK} to the first stage)"


def method_notices(comparison: Comparison, display: dict[str, str], k: int) -> None:
    """Truncation, fallbacks, backend notes and a summary of what could not run."""
    n = len(comparison.candidates)
    unavailable = [r for r in comparison.results if is_unavailable(r)]
    for res in comparison.results:
        name = md_escape(display.get(res.method, res.method))
        cut = res.truncated_ids
        if cut:
            shown = sum(1 for it in res.items[:k] if it.truncated)
            st.warning(
                f"**{name}** saw only the start of {len(cut)} of the {n} candidates (longer than the model's "
                f"input limit); {shown} of them are in the shown top {k}, marked *truncated for this model*.",
                icon=":material/content_cut:",
            )
        notes = [note for note in res.notes if note and "fell back" not in note]
        if notes and not is_unavailable(res):
            st.caption(f"**{name}:** " + " · ".join(md_escape(note) for note in notes))
    if unavailable:
        names = ", ".join(md_escape(display.get(r.method, r.method)) for r in unavailable)
        ran = len(comparison.results) - len(unavailable)
        others = (
            f"The other {ran} reranked the same {n} candidates."
            if ran
            else "The first-stage order is shown on its own."
        )
        st.info(
            f"{len(unavailable)} of {len(comparison.results)} methods cannot run here ({names}): "
            f"each column says why and how to fix it. {others}",
            icon=":material/info:",
        )


# -- chart and table --------------------------------------------------------------------------------------


def plot_label(text: str) -> str:
    """A label for plotly, which reads a few HTML tags in text: escape them."""
    return esc(text)


def latency_figure(
    names: Sequence[str],
    query_ms: Sequence[float],
    load_s: Sequence[float],
    colours: Sequence[str],
):
    """Query time per order (left) and the one-off load or index build (right), as two bar panels."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    labels = [plot_label(n) for n in names]
    fig = make_subplots(
        rows=1,
        cols=2,
        shared_yaxes=True,
        horizontal_spacing=0.04,
        column_widths=[0.62, 0.38],
        subplot_titles=("Query latency (ms)<br>same candidates", "One-off load (s)<br>model or index"),
    )
    fig.add_trace(
        go.Bar(
            name="query (ms)",
            x=list(query_ms),
            y=labels,
            orientation="h",
            marker_color=list(colours),
            text=[f"{v:,.0f} ms" if v >= 10 else f"{v:,.1f} ms" for v in query_ms],
            textposition="auto",
            hovertemplate="%{y}: %{x:,.1f} ms per query<extra></extra>",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Bar(
            name="load (s)",
            x=list(load_s),
            y=labels,
            orientation="h",
            marker_color=list(colours),
            marker_pattern_shape="/",
            opacity=0.55,
            text=[f"{v:,.1f} s" if v else "cached" for v in load_s],
            textposition="auto",
            hovertemplate="%{y}: %{x:,.2f} s once per process<extra></extra>",
        ),
        row=1,
        col=2,
    )
    height = 90 + 34 * len(names)
    fig.update_layout(
        height=max(height, 200),
        margin=dict(l=10, r=10, t=40, b=10),
        showlegend=False,
        bargap=0.25,
    )
    fig.update_yaxes(autorange="reversed")
    return fig


def agreement_note(comparison: Comparison, display: Mapping[str, str]) -> str:
    """Which orders the agreement table leaves out and why ("" when none)."""
    left = [display.get(m, m) for m in comparison.fallbacks()]
    if not left:
        return ""
    return (
        f"Left out: {', '.join(md_escape(n) for n in left)}. Its order is the first stage's, kept after an "
        "error, so it would agree fully with the first stage without having ranked anything."
    )


def agreement_rows(comparison: Comparison, k: int, display: dict[str, str]) -> list[dict]:
    """One row per pair of orders a method produced itself (fallbacks left out, see :func:`agreement_note`)."""
    rows = []
    for ag in comparison.agreement(k):
        rows.append(
            {
                "Order A": display.get(ag.a, ag.a),
                "Order B": display.get(ag.b, ag.b),
                f"Overlap@{k}": ag.overlap,
                "Kendall τ": None if math.isnan(ag.kendall_tau) else ag.kendall_tau,
                f"RBO@{k} (p=0.9)": ag.rbo,
            }
        )
    return rows
