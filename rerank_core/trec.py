"""TREC run files, TREC qrels and BEIR qrels TSV on disk.

The formats are read and written by :mod:`rerank_core.readers` (one reader and one writer per
format, over bytes, streams or paths); the functions here keep the path-based names the rest of the
code and earlier scripts use, and add :func:`results_to_run`.

- run file: ``qid Q0 docid rank score run_name``, one line per retrieved document;
- TREC qrels: ``qid 0 docid grade`` (the second column is ignored on reading);
- BEIR qrels: tab-separated ``query-id  corpus-id  score`` with that header line.

Readers raise :class:`~rerank_core.errors.CorpusFormatError` naming the file and the line.
Writers order each query's documents as evaluators read them (score descending, ties by doc id
descending), number ranks 1..n, and write scores with ``repr`` (the shortest text that reads back
as the same float), so a run survives a round trip exactly.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from rerank_core import readers
from rerank_core.metrics import Qrels, Run, trec_score
from rerank_core.readers import BEIR_HEADER
from rerank_core.types import RerankResult

PathLike = str | os.PathLike[str]

__all__ = [
    "BEIR_HEADER",
    "read_beir_qrels",
    "read_qrels",
    "read_run",
    "read_trec_qrels",
    "results_to_run",
    "write_beir_qrels",
    "write_run",
    "write_trec_qrels",
]


def _write(path: PathLike, text: str) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return p


# ---------------------------------------------------------------------------------------------
# runs


def write_run(path: PathLike, run: Mapping[str, Mapping[str, float]], run_name: str = "rerank") -> Path:
    """Write ``run`` as a TREC run file; returns the path. Queries are written in the run's order."""
    return _write(path, readers.write_run(run, run_name, name=str(path)))


def read_run(path: PathLike) -> Run:
    """Read a TREC run file into ``{qid: {doc_id: score}}`` (the rank column is not used)."""
    return readers.read_run(path).run


def results_to_run(results: Mapping[str, RerankResult]) -> Run:
    """A run from one method's results (``{qid: RerankResult}``) that keeps each result's order.

    Evaluators re-sort a run by score, compare scores as 32-bit floats and break ties by doc id,
    which would replace a method's own tie-break (a reranker keeps the first-stage order among
    equal scores) with an arbitrary one. So a document whose score does not fall strictly below the
    previous one at float32 precision gets the next float32 below it (a change in about the 7th
    significant digit); every other score is written unchanged. Non-finite scores (a NaN turned
    into -inf) are handled the same way. Results without items (a failed query) give an empty
    ranking, which evaluates as nothing retrieved.
    """
    run: Run = {}
    for qid, result in results.items():
        scores: dict[str, float] = {}
        previous: float | None = None  # the previous score as trec_eval sees it (float32)
        for item in result.items:
            value = float(item.score)
            if not math.isfinite(value) and previous is None:
                value = 0.0
            if previous is not None and (not math.isfinite(value) or trec_score(value) >= previous):
                value = float(np.nextafter(np.float32(previous), np.float32(-np.inf)))
            if item.doc_id in scores:
                raise ValueError(f"{result.method}: document {item.doc_id!r} appears twice for query {qid!r}")
            scores[item.doc_id] = value
            previous = trec_score(value)
        run[qid] = scores
    return run


# ---------------------------------------------------------------------------------------------
# qrels (a pair judged twice with different grades keeps the first; readers.read_qrels warns)


def read_trec_qrels(path: PathLike) -> Qrels:
    """Read TREC qrels ``qid 0 docid grade``."""
    return readers.read_qrels(path, fmt="trec").qrels


def write_trec_qrels(path: PathLike, qrels: Mapping[str, Mapping[str, int]]) -> Path:
    return _write(path, readers.write_qrels("trec", qrels, name=str(path)))


def read_beir_qrels(path: PathLike) -> Qrels:
    """Read BEIR qrels: a TSV with a ``query-id corpus-id score`` header (ids may contain spaces)."""
    return readers.read_qrels(path, fmt="beir").qrels


def write_beir_qrels(path: PathLike, qrels: Mapping[str, Mapping[str, int]]) -> Path:
    return _write(path, readers.write_qrels("beir", qrels, name=str(path)))


def read_qrels(path: PathLike) -> Qrels:
    """Read qrels in either format: tab-separated with 3 columns is BEIR, 4 columns is TREC."""
    return readers.read_qrels(path).qrels
