"""The first-stage interface: build an index over a corpus once, then return top-N candidates."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar, NamedTuple

from rerank_core.config import Settings, load_settings
from rerank_core.errors import ConfigError
from rerank_core.progress import ProgressFn
from rerank_core.types import (
    FIRST_STAGE_KIND,
    Candidate,
    Corpus,
    MethodInfo,
    RankedItem,
    RerankResult,
    ScoreScale,
)


class MissingHitText(ConfigError):
    kind = "missing-hit-text"


class Hit(NamedTuple):
    """One search result. ``title``/``text`` are None when the hit did not carry them (then they come
    from the corpus by id)."""

    doc_id: str
    score: float
    title: str | None = None
    text: str | None = None


class Retriever(ABC):
    name: ClassVar[str] = ""
    scale: ScoreScale = ScoreScale.FIRST_STAGE
    #: what the app shows: a short title and one line on what it does
    title: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: the model used when none is given (None: no model)
    default_model: ClassVar[str | None] = None
    #: builds a local index over the corpus (an engine that already serves the corpus does not)
    needs_index: ClassVar[bool] = True
    #: searches a remote service
    hosted: ClassVar[bool] = False
    offline: ClassVar[bool] = True
    #: secrets it reads, by environment-variable name: the only secrets its settings will hold
    secrets: ClassVar[tuple[str, ...]] = ()
    #: settings fields it reads besides its ``[methods.<name>]`` options (part of its cache key)
    reads: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def info(cls) -> MethodInfo:
        return MethodInfo.of(
            cls, FIRST_STAGE_KIND, needs_index=cls.needs_index, takes_model=cls.default_model is not None
        )

    def __init__(self, settings: Settings | None = None, **options) -> None:
        self.settings = (settings or load_settings()).only_secrets(self.secrets)
        self.options = {**self.settings.method_options(self.name), **options}
        self.corpus: Corpus | None = None
        self.build_s = 0.0

    @property
    def label(self) -> str:
        return self.name

    @abstractmethod
    def _build(self, corpus: Corpus, progress: ProgressFn | None) -> None: ...

    @abstractmethod
    def _search(self, query: str, k: int) -> list[tuple[str, float]] | list[Hit]:
        """Top ``k`` (doc_id, score) pairs or :class:`Hit` records, best first."""

    def build(self, corpus: Corpus, progress: ProgressFn | None = None) -> Retriever:
        t0 = time.perf_counter()
        self._build(corpus, progress)
        self.corpus = corpus
        self.build_s = time.perf_counter() - t0
        return self

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        """Top ``k`` (doc_id, score) pairs, best first."""
        return [(h.doc_id, h.score) for h in self.hits(query, k)]

    def hits(self, query: str, k: int) -> list[Hit]:
        """Top ``k`` hits, best first (an index-free engine may return hits outside the corpus)."""
        if self.corpus is None and self.needs_index:
            raise RuntimeError(f"{self.name}: build() or load() the index before searching")
        if k <= 0 or not query.strip():
            return []
        if self.corpus is not None and self.needs_index:
            k = min(k, len(self.corpus))
        return [h if isinstance(h, Hit) else Hit(str(h[0]), float(h[1])) for h in self._search(query, k)]

    def candidates(self, query: str, k: int) -> tuple[list[Candidate], RerankResult]:
        """The top ``k`` as candidates for the rerankers, and the first stage's own timed result.

        A hit's title and text come from the hit when it carries them, else from the corpus by id."""
        t0 = time.perf_counter()
        hits = self.hits(query, k)
        latency_ms = (time.perf_counter() - t0) * 1e3
        cands = []
        for rank, hit in enumerate(hits, start=1):
            title, text = hit.title, hit.text
            if text is None or title is None:
                doc = (
                    self.corpus.get(hit.doc_id)
                    if self.corpus is not None and hit.doc_id in self.corpus
                    else None
                )
                if doc is None and text is None:
                    raise MissingHitText(
                        f"{self.name} returned document {hit.doc_id!r} without its text, and the corpus in use "
                        "has no document with that id.",
                        hint="return the text field from the engine (see the method's text field setting), "
                        "or load the corpus the engine serves",
                    )
                title = title if title is not None else (doc.title if doc is not None else "")
                text = text if text is not None else doc.text  # type: ignore[union-attr]
            cands.append(
                Candidate(
                    doc_id=hit.doc_id,
                    text=text,
                    title=title,
                    first_stage_rank=rank,
                    first_stage_score=float(hit.score),
                )
            )
        result = RerankResult(
            method=self.name,
            scale=self.scale,
            label=self.label,
            items=tuple(
                RankedItem(
                    doc_id=c.doc_id,
                    rank=c.first_stage_rank,
                    score=c.first_stage_score,
                    first_stage_rank=c.first_stage_rank,
                )
                for c in cands
            ),
            latency_ms=latency_ms,
        )
        return cands, result

    # persistence: subclasses write everything they need under ``directory``
    @abstractmethod
    def save(self, directory: str | Path) -> None: ...

    @classmethod
    @abstractmethod
    def load(cls, directory: str | Path, corpus: Corpus, settings: Settings | None = None) -> Retriever:
        """Reload a saved index; raises if it was built for a different corpus fingerprint."""
