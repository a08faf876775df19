"""Read and write TREC run files, TREC qrels and BEIR qrels TSV.

Formats (whitespace-separated columns; ids may not contain whitespace):

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
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from rerank_core.errors import CorpusFormatError
from rerank_core.metrics import Qrels, Run, rank_documents, trec_score
from rerank_core.types import RerankResult

PathLike = str | os.PathLike[str]

# ---------------------------------------------------------------------------------------------
# helpers


def _lines(path: PathLike) -> Iterator[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers; decoding errors become CorpusFormatError."""
    p = Path(path)
    if not p.is_file():
        raise CorpusFormatError(f"{p} does not exist or is not a file", hint="check the path")
    try:
        with p.open("r", encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                text = line.rstrip("\r\n")
                if text.strip():
                    yield number, text
    except UnicodeDecodeError as exc:
        raise CorpusFormatError(
            f"not UTF-8 text ({exc.reason})", file=str(p), hint="save the file as UTF-8"
        ) from exc


def _check_token(value: str, what: str, file: str | None = None) -> str:
    value = str(value)
    if not value or any(ch.isspace() for ch in value):
        raise CorpusFormatError(
            f"{what} {value!r} is empty or contains whitespace, which the whitespace-separated TREC "
            "format cannot hold",
            file=file,
            hint=f"rename the {what} (for example replace spaces with '_') before writing TREC files",
        )
    return value


def _parse_grade(text: str, file: str, line: int) -> int:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value != int(value):
        raise CorpusFormatError(
            f"relevance grade {text!r} is not an integer",
            file=file,
            line=line,
            hint="grades are integers such as 0, 1, 2",
        )
    return int(value)


def _add_judgement(qrels: Qrels, qid: str, doc_id: str, grade: int, file: str, line: int) -> None:
    judged = qrels.setdefault(qid, {})
    if doc_id in judged and judged[doc_id] != grade:
        raise CorpusFormatError(
            f"query {qid!r} judges document {doc_id!r} twice with different grades ({judged[doc_id]} and {grade})",
            file=file,
            line=line,
            hint="keep one judgement per query and document",
        )
    judged[doc_id] = grade


# ---------------------------------------------------------------------------------------------
# runs


def write_run(path: PathLike, run: Mapping[str, Mapping[str, float]], run_name: str = "rerank") -> Path:
    """Write ``run`` as a TREC run file; returns the path. Queries are written in the run's order."""
    p = Path(path)
    _check_token(run_name, "run name", str(p))
    lines: list[str] = []
    for qid, scores in run.items():
        _check_token(qid, "query id", str(p))
        for doc_id, score in scores.items():
            _check_token(doc_id, "document id", str(p))
            if math.isnan(float(score)):
                raise CorpusFormatError(
                    f"query {qid!r}, document {doc_id!r} has a NaN score",
                    file=str(p),
                    hint="give every document a number",
                )
        for rank, doc_id in enumerate(rank_documents(scores), start=1):
            lines.append(f"{qid} Q0 {doc_id} {rank} {float(scores[doc_id])!r} {run_name}\n")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("".join(lines), encoding="utf-8")
    return p


def read_run(path: PathLike) -> Run:
    """Read a TREC run file into ``{qid: {doc_id: score}}`` (the rank column is not used)."""
    file = str(path)
    run: Run = {}
    for number, text in _lines(path):
        cols = text.split()
        if len(cols) != 6:
            raise CorpusFormatError(
                f"expected 6 columns 'qid Q0 docid rank score run_name', found {len(cols)}",
                file=file,
                line=number,
                hint="each line of a TREC run file has exactly 6 whitespace-separated columns",
            )
        qid, _, doc_id, rank, score_text, _ = cols
        try:
            int(rank)
            score = float(score_text)
        except ValueError:
            raise CorpusFormatError(
                f"rank {rank!r} must be an integer and score {score_text!r} a number",
                file=file,
                line=number,
                hint="columns are: qid Q0 docid rank score run_name",
            ) from None
        if math.isnan(score):
            raise CorpusFormatError(
                "score is NaN", file=file, line=number, hint="give every document a number"
            )
        docs = run.setdefault(qid, {})
        if doc_id in docs:
            raise CorpusFormatError(
                f"document {doc_id!r} appears twice for query {qid!r}",
                file=file,
                line=number,
                hint="a run lists each document at most once per query",
            )
        docs[doc_id] = score
    return run


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
# qrels


def read_trec_qrels(path: PathLike) -> Qrels:
    """Read TREC qrels ``qid 0 docid grade``."""
    file = str(path)
    qrels: Qrels = {}
    for number, text in _lines(path):
        cols = text.split()
        if len(cols) != 4:
            raise CorpusFormatError(
                f"expected 4 columns 'qid 0 docid grade', found {len(cols)}",
                file=file,
                line=number,
                hint="each line of TREC qrels has exactly 4 whitespace-separated columns",
            )
        qid, _, doc_id, grade = cols
        _add_judgement(qrels, qid, doc_id, _parse_grade(grade, file, number), file, number)
    return qrels


def write_trec_qrels(path: PathLike, qrels: Mapping[str, Mapping[str, int]]) -> Path:
    p = Path(path)
    lines = []
    for qid, judged in qrels.items():
        _check_token(qid, "query id", str(p))
        for doc_id, grade in judged.items():
            _check_token(doc_id, "document id", str(p))
            lines.append(f"{qid} 0 {doc_id} {int(grade)}\n")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("".join(lines), encoding="utf-8")
    return p


BEIR_HEADER = ("query-id", "corpus-id", "score")


def read_beir_qrels(path: PathLike) -> Qrels:
    """Read BEIR qrels: a TSV with a ``query-id corpus-id score`` header (ids may contain spaces)."""
    file = str(path)
    qrels: Qrels = {}
    first = True
    for number, text in _lines(path):
        cols = [c.strip() for c in text.split("\t")]
        if first:
            first = False
            if [c.lower() for c in cols] == list(BEIR_HEADER) or (len(cols) == 3 and not _looks_int(cols[2])):
                continue
        if len(cols) != 3 or not cols[0] or not cols[1]:
            raise CorpusFormatError(
                f"expected 3 tab-separated columns 'query-id, corpus-id, score', found {len(cols)}",
                file=file,
                line=number,
                hint="BEIR qrels are tab-separated with the header 'query-id\\tcorpus-id\\tscore'",
            )
        qid, doc_id, grade = cols
        _add_judgement(qrels, qid, doc_id, _parse_grade(grade, file, number), file, number)
    return qrels


def _looks_int(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return math.isfinite(value) and value == int(value)


def write_beir_qrels(path: PathLike, qrels: Mapping[str, Mapping[str, int]]) -> Path:
    p = Path(path)
    lines = ["\t".join(BEIR_HEADER) + "\n"]
    for qid, judged in qrels.items():
        for doc_id, grade in judged.items():
            for what, value in (("query id", qid), ("document id", doc_id)):
                if not value or "\t" in value or "\n" in value:
                    raise CorpusFormatError(
                        f"{what} {value!r} is empty or contains a tab or newline",
                        file=str(p),
                        hint=f"rename the {what}",
                    )
            lines.append(f"{qid}\t{doc_id}\t{int(grade)}\n")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("".join(lines), encoding="utf-8")
    return p


def read_qrels(path: PathLike) -> Qrels:
    """Read qrels in either format: tab-separated with 3 columns is BEIR, 4 columns is TREC."""
    for _, text in _lines(path):
        if len(text.split("\t")) == 3:
            return read_beir_qrels(path)
        return read_trec_qrels(path)
    return {}
