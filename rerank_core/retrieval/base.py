"""The first-stage interface: build an index over a corpus once, then return top-N candidates."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

from rerank_core.config import Settings
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
        return MethodInfo(
            name=cls.name,
            kind=FIRST_STAGE_KIND,
            title=cls.title or cls.name,
            description=cls.description,
            scale=cls.scale,
            hosted=cls.hosted,
            offline=cls.offline,
            default_model=cls.default_model,
            secrets=tuple(cls.secrets),
            reads=tuple(cls.reads),
            needs_index=cls.needs_index,
            takes_model=cls.default_model is not None,
        )

    def __init__(self, settings: Settings | None = None, **options) -> None:
        self.settings = (settings or Settings()).only_secrets(self.secrets)
        self.options = {**self.settings.method_options(self.name), **options}
        self.corpus: Corpus | None = None
        self.build_s = 0.0

    @property
    def label(self) -> str:
        return self.name

    @abstractmethod
    def _build(self, corpus: Corpus, progress: ProgressFn | None) -> None: ...

    @abstractmethod
    def _search(self, query: str, k: int) -> list[tuple[str, float]]:
        """Top ``k`` (doc_id, score), best first."""

    def build(self, corpus: Corpus, progress: ProgressFn | None = None) -> Retriever:
        t0 = time.perf_counter()
        self._build(corpus, progress)
        self.corpus = corpus
        self.build_s = time.perf_counter() - t0
        return self

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        if self.corpus is None:
            raise RuntimeError(f"{self.name}: build() or load() the index before searching")
        if k <= 0 or not query.strip():
            return []
        return self._search(query, min(k, len(self.corpus)))

    def candidates(self, query: str, k: int) -> tuple[list[Candidate], RerankResult]:
        """The top ``k`` as candidates for the rerankers, and the first stage's own timed result."""
        t0 = time.perf_counter()
        hits = self.search(query, k)
        latency_ms = (time.perf_counter() - t0) * 1e3
        assert self.corpus is not None
        cands = []
        for rank, (doc_id, score) in enumerate(hits, start=1):
            doc = self.corpus.get(doc_id)
            cands.append(
                Candidate(
                    doc_id=doc_id,
                    text=doc.text,
                    title=doc.title,
                    first_stage_rank=rank,
                    first_stage_score=float(score),
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
