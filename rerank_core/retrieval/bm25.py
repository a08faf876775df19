"""BM25 first stage on bm25s, with PyStemmer stemming and stopword removal.

Each document is indexed as ``Document.full_text`` (title, then text). Tokenisation is the same for
documents and queries: lowercase, words of two or more word characters, stopwords removed, then
stemmed. A query none of whose tokens occurs in the corpus returns no candidates; otherwise only
documents containing at least one query token are returned (never zero-evidence padding).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rerank_core.config import Settings
from rerank_core.errors import BackendUnavailable, ConfigError, CorpusFormatError
from rerank_core.progress import ProgressFn, report
from rerank_core.retrieval.base import Retriever
from rerank_core.retrieval.persist import read_meta, write_meta
from rerank_core.types import Corpus, ScoreScale

METHODS = ("lucene", "robertson", "atire", "bm25l", "bm25+")
DEFAULTS: dict[str, Any] = {"stemmer": "english", "stopwords": "en", "k1": 1.5, "b": 0.75, "method": "lucene"}
_TOKEN = re.compile(r"(?u)\b\w\w+\b")
_INDEX_DIR = "bm25s"
_CHUNK = 2000  # documents tokenised between progress reports


def _import_bm25s():
    try:
        import bm25s
    except ImportError as exc:
        raise BackendUnavailable(
            f"bm25 needs the bm25s package ({exc}).", hint="pip install -r requirements.txt (bm25s==0.3.16)"
        ) from exc
    return bm25s


class Analyzer:
    """Lowercase, split into words, drop stopwords, stem. Identical for documents and queries."""

    def __init__(self, stemmer: str | None, stopwords: str | Sequence[str] | None) -> None:
        self.stopwords = frozenset(_stopword_list(stopwords))
        self._stem = None
        if stemmer:
            try:
                import Stemmer
            except ImportError as exc:
                raise BackendUnavailable(
                    f"bm25 stemming needs PyStemmer ({exc}).",
                    hint="pip install PyStemmer==3.1.0, or set the bm25 option stemmer to None",
                ) from exc
            if stemmer not in Stemmer.algorithms():
                raise ConfigError(
                    f"unknown bm25 stemmer language {stemmer!r}.",
                    hint=f"use one of: {', '.join(Stemmer.algorithms())}, or None for no stemming",
                )
            self._stem = Stemmer.Stemmer(stemmer).stemWords

    def __call__(self, text: str) -> list[str]:
        words = [w for w in _TOKEN.findall(text.lower()) if w not in self.stopwords]
        return list(self._stem(words)) if self._stem is not None and words else words

    def many(self, texts: Sequence[str]) -> list[list[str]]:
        return [self(t) for t in texts]


# language code -> name of the list in bm25s.stopwords
_STOPWORD_LISTS = {
    "en": "EN",
    "english": "EN",
    "en_plus": "EN_PLUS",
    "english_plus": "EN_PLUS",
    "de": "GERMAN",
    "german": "GERMAN",
    "nl": "DUTCH",
    "dutch": "DUTCH",
    "fr": "FRENCH",
    "french": "FRENCH",
    "es": "SPANISH",
    "spanish": "SPANISH",
    "pt": "PORTUGUESE",
    "portuguese": "PORTUGUESE",
    "it": "ITALIAN",
    "italian": "ITALIAN",
    "ru": "RUSSIAN",
    "russian": "RUSSIAN",
    "sv": "SWEDISH",
    "swedish": "SWEDISH",
    "no": "NORWEGIAN",
    "norwegian": "NORWEGIAN",
    "zh": "CHINESE",
    "chinese": "CHINESE",
    "tr": "TURKISH",
    "turkish": "TURKISH",
    "ko": "KOREAN",
    "korean": "KOREAN",
    "da": "DANISH",
    "danish": "DANISH",
}


def _stopword_list(stopwords: str | Sequence[str] | None) -> list[str]:
    if stopwords is None or stopwords is False:
        return []
    if isinstance(stopwords, str):
        if stopwords.lower() not in _STOPWORD_LISTS:
            raise ConfigError(
                f"unknown bm25 stopword list {stopwords!r}.",
                hint=f"use one of {', '.join(sorted(_STOPWORD_LISTS))}, a list of words, or None",
            )
        _import_bm25s()
        import bm25s.stopwords

        return [
            w.lower() for w in getattr(bm25s.stopwords, "STOPWORDS_" + _STOPWORD_LISTS[stopwords.lower()])
        ]
    if isinstance(stopwords, Sequence) and all(isinstance(w, str) for w in stopwords):
        return [w.lower() for w in stopwords]
    raise ConfigError(
        f"bm25 option stopwords must be a language code, a list of words or None, not {stopwords!r}.",
        hint='for example stopwords="en" or stopwords=["the", "of"]',
    )


def _check_options(options: dict[str, Any]) -> dict[str, Any]:
    opts = {**DEFAULTS, **options}
    unknown = set(opts) - set(DEFAULTS)
    if unknown:
        raise ConfigError(
            f"unknown bm25 option(s): {', '.join(sorted(unknown))}.",
            hint=f"bm25 options are: {', '.join(DEFAULTS)}",
        )
    if opts["method"] not in METHODS:
        raise ConfigError(
            f"unknown bm25 method {opts['method']!r}.", hint=f"use one of: {', '.join(METHODS)}"
        )
    try:
        opts["k1"], opts["b"] = float(opts["k1"]), float(opts["b"])
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"bm25 k1 and b must be numbers ({exc}).", hint="for example k1=1.5, b=0.75"
        ) from exc
    if opts["k1"] < 0 or not 0.0 <= opts["b"] <= 1.0:
        raise ConfigError(
            f"bm25 needs k1 >= 0 and 0 <= b <= 1 (got k1={opts['k1']}, b={opts['b']}).",
            hint="typical values are k1 between 0.9 and 2.0 and b=0.75",
        )
    if isinstance(opts["stopwords"], tuple):
        opts["stopwords"] = list(opts["stopwords"])
    return opts


class BM25Retriever(Retriever):
    """Sparse lexical first stage. Options: ``stemmer``, ``stopwords``, ``k1``, ``b``, ``method``."""

    name = "bm25"
    scale = ScoreScale.BM25
    title = "BM25"
    description = "lexical first stage (bm25s, stemming and stopwords)"

    def __init__(self, settings: Settings | None = None, **options: Any) -> None:
        super().__init__(settings=settings, **options)
        self.options = _check_options(self.options)
        self.analyzer = Analyzer(self.options["stemmer"], self.options["stopwords"])
        self._index: Any = None

    @property
    def label(self) -> str:
        o = self.options
        stem = f"{o['stemmer']} stemming" if o["stemmer"] else "no stemming"
        stop = "stopwords removed" if self.analyzer.stopwords else "no stopwords"
        return f"BM25 ({o['method']}, k1={o['k1']:g}, b={o['b']:g}, {stem}, {stop})"

    def _build(self, corpus: Corpus, progress: ProgressFn | None) -> None:
        if len(corpus) == 0:
            raise CorpusFormatError(
                f"corpus {corpus.name!r} has no documents to index.", hint="add at least one document"
            )
        bm25s = _import_bm25s()
        total = len(corpus)
        tokens: list[list[str]] = []
        report(progress, 0, total, "BM25: tokenising")
        for start in range(0, total, _CHUNK):
            chunk = corpus[start : start + _CHUNK]
            tokens.extend(self.analyzer.many([d.full_text for d in chunk]))
            report(progress, len(tokens), total, "BM25: tokenising")
        index = bm25s.BM25(k1=self.options["k1"], b=self.options["b"], method=self.options["method"])
        index.index(tokens, show_progress=False)
        self._index = index
        report(progress, total, total, "BM25: index built")

    def query_tokens(self, query: str) -> list[str]:
        """The query's tokens that occur in the index (after stopwords and stemming)."""
        vocab = self._index.vocab_dict
        return [t for t in self.analyzer(query) if t in vocab]

    def _search(self, query: str, k: int) -> list[tuple[str, float]]:
        assert self.corpus is not None and self._index is not None
        vocab = self._index.vocab_dict
        ids = [vocab[t] for t in self.analyzer(query) if t in vocab]
        if not ids or k <= 0:
            return []
        scores = self._index.get_scores_from_ids(ids)
        csc = self._index.scores
        indptr, indices = csc["indptr"], csc["indices"]
        matched = np.unique(np.concatenate([indices[indptr[t] : indptr[t + 1]] for t in set(ids)]))
        if matched.size == 0:
            return []
        top = top_k_positions(matched, scores[matched], k)
        doc_ids = self.corpus.ids
        return [(doc_ids[i], float(scores[i])) for i in top]

    # -- persistence -------------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        if self._index is None or self.corpus is None:
            raise ConfigError("bm25: nothing to save yet.", hint="build() the index before save()")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._index.save(str(directory / _INDEX_DIR), show_progress=False)
        write_meta(directory, retriever=self.name, corpus=self.corpus, options=self.options)

    @classmethod
    def load(cls, directory: str | Path, corpus: Corpus, settings: Settings | None = None) -> BM25Retriever:
        directory = Path(directory)
        meta = read_meta(directory, retriever=cls.name, corpus=corpus)
        bm25s = _import_bm25s()
        self = cls(settings=settings, **meta.get("options", {}))
        try:
            index = bm25s.BM25.load(str(directory / _INDEX_DIR), show_progress=False)
        except Exception as exc:  # noqa: BLE001 - a damaged folder becomes a typed error
            raise ConfigError(
                f"cannot load the bm25s index in {directory / _INDEX_DIR}: {type(exc).__name__}: {exc}",
                hint="rebuild the index and save it again",
            ) from exc
        if int(index.scores["num_docs"]) != len(corpus):
            raise ConfigError(
                f"the bm25s index in {directory} holds {index.scores['num_docs']} documents, "
                f"the corpus {len(corpus)}.",
                hint="rebuild the index and save it again",
            )
        self._index = index
        self.corpus = corpus
        return self


def top_k_positions(positions: np.ndarray, values: np.ndarray, k: int) -> np.ndarray:
    """``positions`` of the ``k`` largest ``values``, best first; ties go to the smaller position."""
    if positions.size > k:
        kth = np.partition(values, positions.size - k)[positions.size - k]
        keep = values >= kth
        positions, values = positions[keep], values[keep]
    order = np.lexsort((positions, -values))[:k]
    return positions[order]
