"""The built-in sample dataset the app opens on.

A small corpus written for this project (see ``README.md`` in this folder): 262 short passages on
eight topics, 32 questions and graded relevance judgements (0-3), in the BEIR layout::

    corpus.jsonl        {"_id", "title", "text"} per line
    queries.jsonl       {"_id", "text"} per line
    qrels/test.tsv      query-id <TAB> corpus-id <TAB> score, with a header row

Each question has passages that answer it, passages that answer part of it, and hard distractors
that share its keywords without answering it, so keyword search alone ranks some of them above the
answers and reranking visibly changes the order. A few passages contain literal HTML and one holds a
prompt-injection sentence; both must be displayed as plain text and ignored by rerankers.
"""

from __future__ import annotations

import json
from pathlib import Path

from rerank_core.types import Dataset

SAMPLE_DIR: Path = Path(__file__).resolve().parent

# Questions where BM25's first result is not an answer, so a reranker has something to fix. The app
# runs the first one on opening. q27: BM25 prefers the outbreak of the Second World War; q09: a
# keyword-stuffed advert carrying a prompt-injection sentence is near the top; q23: the answers say
# "CO2", not "carbon dioxide", so BM25 misses them (a case for dense or hybrid retrieval).
EXAMPLE_QUERY_IDS: tuple[str, ...] = ("q27", "q09", "q06", "q15", "q01", "q18", "q05", "q23")


def sample_dataset() -> Dataset:
    """Load the sample corpus, queries and judgements (a fresh :class:`Dataset` on every call)."""
    from rerank_core.corpus import load_beir

    return load_beir(SAMPLE_DIR)


def example_queries() -> list[str]:
    """Demo questions on which reranking changes the result, best first."""
    texts: dict[str, str] = {}
    with open(SAMPLE_DIR / "queries.jsonl", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                record = json.loads(line)
                texts[record["_id"]] = record["text"]
    return [texts[qid] for qid in EXAMPLE_QUERY_IDS]


__all__ = ["EXAMPLE_QUERY_IDS", "SAMPLE_DIR", "example_queries", "sample_dataset"]
