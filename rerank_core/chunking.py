"""Split long documents into chunks whose ids trace back to their source document.

Tokens
    ``size`` and ``overlap`` count tokens. By default a token is a run of non-whitespace characters
    (whitespace-separated words), which needs no model. Any other tokenizer can be passed as a
    callable that returns the *character spans* ``(start, end)`` of the tokens of a string, for
    example a Hugging Face fast tokenizer::

        def spans(text):
            return tok(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]

    Chunk text is always a slice of the original text (from the first token's start to the last
    token's end), so line breaks and punctuation are kept as they were.

Ids
    In the ``"tokens"`` and ``"sentences"`` modes *every* document becomes one or more chunks with
    ids ``f"{doc.id}#c{n}"`` (n from 0) and ``parent_id=doc.id`` -- a short document becomes the
    single chunk ``f"{doc.id}#c0"``. Keeping one id scheme for the whole chunked corpus means every
    hit traces back to its document with :func:`parent_of` or ``Document.parent_id``. Mode
    ``"none"`` returns the documents unchanged. Ids are stable: the same documents and config give
    the same chunks and ids.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from rerank_core.types import Document

Span = tuple[int, int]
Tokenizer = Callable[[str], Sequence[Span]]

CHUNK_MODES = ("none", "tokens", "sentences")

_WORD = re.compile(r"\S+")
_CHUNK_SUFFIX = re.compile(r"^(.*)#c(\d+)$", re.DOTALL)


def whitespace_spans(text: str) -> list[Span]:
    """The default tokenizer: the character spans of whitespace-separated words."""
    return [m.span() for m in _WORD.finditer(text)]


def count_tokens(text: str, tokenizer: Tokenizer | None = None) -> int:
    """Number of tokens in ``text`` (whitespace words unless a tokenizer is given)."""
    if tokenizer is None:
        return sum(1 for _ in _WORD.finditer(text))
    return len(tokenizer(text))


@dataclass(frozen=True)
class ChunkConfig:
    """How to chunk. ``size`` and ``overlap`` are in tokens (see the module docstring).

    - ``"none"``: documents stay whole.
    - ``"tokens"``: windows of ``size`` tokens; each window starts ``size - overlap`` tokens after
      the previous one.
    - ``"sentences"``: whole sentences packed up to ``size`` tokens; the next chunk starts with the
      trailing sentences of the previous one that fit in ``overlap`` tokens. A single sentence
      longer than ``size`` is split into token windows.
    """

    mode: Literal["none", "tokens", "sentences"] = "none"
    size: int = 200
    overlap: int = 40

    def __post_init__(self) -> None:
        if self.mode not in CHUNK_MODES:
            raise ValueError(f"chunk mode must be one of {', '.join(CHUNK_MODES)}, not {self.mode!r}")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size <= 0:
            raise ValueError(f"chunk size must be a positive number of tokens, not {self.size!r}")
        if isinstance(self.overlap, bool) or not isinstance(self.overlap, int) or self.overlap < 0:
            raise ValueError(
                f"chunk overlap must be zero or a positive number of tokens, not {self.overlap!r}"
            )
        if self.overlap >= self.size:
            raise ValueError(
                f"chunk overlap ({self.overlap}) must be smaller than the chunk size ({self.size}); "
                "otherwise a window would never move forward"
            )

    @property
    def enabled(self) -> bool:
        return self.mode != "none"


def chunk_id(doc_id: str, n: int) -> str:
    return f"{doc_id}#c{n}"


def parent_of(chunk_id: str) -> str:
    """The source document id of a chunk id (``"doc7#c3"`` -> ``"doc7"``); other ids unchanged."""
    m = _CHUNK_SUFFIX.match(chunk_id)
    return m.group(1) if m else chunk_id


# --- sentence splitting -------------------------------------------------------------------------

# A sentence ends at . ! ? or an ellipsis (optionally followed by closing quotes or brackets) that
# is followed by whitespace, or at a blank line.
_SENTENCE_END = re.compile(r"(?:[.!?\u2026]+[\"'\u201d\u2019)\]]*)(?=\s)|\n[ \t]*\n")
_ABBREVIATIONS = frozenset(
    "e.g i.e etc vs cf al fig figs eq eqs no nos dr mr mrs ms prof st jr sr inc ltd co approx ca resp".split()
)


def sentence_spans(text: str) -> list[Span]:
    """Character spans of the sentences of ``text`` (trimmed of surrounding whitespace).

    A rule-based splitter: it does not split after common abbreviations ("e.g.", "Dr.") or single
    capital initials ("J. Smith"), and treats a blank line as a sentence boundary.
    """
    spans: list[Span] = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        end = m.end()
        if m.group(0)[0] == ".":
            last = (text[start : m.start()].rsplit(None, 1)[-1:] or [""])[0].rstrip(".")
            if last.lower() in _ABBREVIATIONS or (len(last) == 1 and last.isupper()):
                continue
        _add_trimmed(text, start, end, spans)
        start = end
    _add_trimmed(text, start, len(text), spans)
    return spans


def _add_trimmed(text: str, start: int, end: int, out: list[Span]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        out.append((start, end))


# --- chunking -----------------------------------------------------------------------------------


def _token_windows(spans: Sequence[Span], size: int, overlap: int) -> list[Span]:
    """Character ranges of token windows over ``spans`` (token spans, in order)."""
    n = len(spans)
    if n == 0:
        return []
    out: list[Span] = []
    step = size - overlap
    start = 0
    while True:
        end = min(start + size, n)
        out.append((spans[start][0], spans[end - 1][1]))
        if end >= n:
            return out
        start += step


def _sentence_chunks(text: str, tokenizer: Tokenizer, size: int, overlap: int) -> list[Span]:
    sentences = []  # (start, end, token spans in text coordinates)
    for s, e in sentence_spans(text):
        toks = [(s + a, s + b) for a, b in tokenizer(text[s:e])]
        if toks:
            sentences.append((s, e, toks))
    out: list[Span] = []
    current: list[tuple[int, int, list[Span]]] = []
    current_tokens = 0

    def flush() -> None:
        if current:
            out.append((current[0][0], current[-1][1]))

    for sent in sentences:
        n = len(sent[2])
        if n > size:
            # a sentence longer than a chunk: finish what we have, then token windows over it
            flush()
            out.extend(_token_windows(sent[2], size, overlap))
            current, current_tokens = [], 0
            continue
        if current and current_tokens + n > size:
            flush()
            carried: list[tuple[int, int, list[Span]]] = []
            carried_tokens = 0
            for prev in reversed(current):
                k = len(prev[2])
                if carried_tokens + k > overlap or carried_tokens + k + n > size:
                    break
                carried.insert(0, prev)
                carried_tokens += k
            current, current_tokens = carried, carried_tokens
        current.append(sent)
        current_tokens += n
    flush()
    return out


def chunk_document(doc: Document, config: ChunkConfig, tokenizer: Tokenizer | None = None) -> list[Document]:
    """The chunks of one document (see the module docstring for ids)."""
    if not config.enabled:
        return [doc]
    tok = tokenizer or whitespace_spans
    if config.mode == "tokens":
        ranges = _token_windows(list(tok(doc.text)), config.size, config.overlap)
    else:
        ranges = _sentence_chunks(doc.text, tok, config.size, config.overlap)
    if not ranges:  # empty text (a title-only document): one chunk that keeps the title
        ranges = [(0, 0)]
    return [
        Document(
            id=chunk_id(doc.id, n), text=doc.text[s:e], title=doc.title, source=doc.source, parent_id=doc.id
        )
        for n, (s, e) in enumerate(ranges)
    ]


def chunk_documents(
    docs: Iterable[Document], config: ChunkConfig, tokenizer: Tokenizer | None = None
) -> list[Document]:
    """Chunk every document, keeping the documents' order (chunks of one document stay together)."""
    if not isinstance(config, ChunkConfig):
        raise TypeError(f"config must be a ChunkConfig, not {type(config).__name__}")
    docs = list(docs)
    if not config.enabled:
        return docs
    out: list[Document] = []
    seen: set[str] = set()
    for doc in docs:
        # "<id>#c<n>" parses back uniquely (the suffix is the last "#c" + digits), so chunk ids can
        # only collide when document ids repeat
        if doc.id in seen:
            raise ValueError(
                f"document id {doc.id!r} occurs twice; document ids must be unique to chunk them"
            )
        seen.add(doc.id)
        out.extend(chunk_document(doc, config, tokenizer))
    return out


def corpus_stats(docs: Iterable[Document], tokenizer: Tokenizer | None = None) -> dict:
    """Figures for the UI: counts and token lengths of the documents' text (whitespace words by default).

    Keys: ``documents``, ``total_tokens``, ``mean_tokens``, ``median_tokens``, ``max_tokens``,
    ``min_tokens``, ``empty_text`` (documents whose text is empty, title or not), ``chunks``
    (documents that are chunks of another), ``parents`` (distinct source documents of those chunks)
    and ``sources`` (file name -> number of documents).
    """
    docs = list(docs)
    lengths = [count_tokens(d.text, tokenizer) for d in docs]
    chunks = [d for d in docs if d.parent_id is not None]
    return {
        "documents": len(docs),
        "total_tokens": sum(lengths),
        "mean_tokens": (sum(lengths) / len(lengths)) if lengths else 0.0,
        "median_tokens": float(statistics.median(lengths)) if lengths else 0.0,
        "max_tokens": max(lengths, default=0),
        "min_tokens": min(lengths, default=0),
        "empty_text": sum(1 for d in docs if not d.text.strip()),
        "chunks": len(chunks),
        "parents": len({d.parent_id for d in chunks}),
        "sources": dict(Counter(d.source for d in docs)),
    }
