"""Chunking: window arithmetic, sentence packing, id tracing and determinism."""

from __future__ import annotations

import re
import statistics

import pytest

from rerank_core.chunking import (
    ChunkConfig,
    chunk_document,
    chunk_documents,
    corpus_stats,
    count_tokens,
    parent_of,
    sentence_spans,
)
from rerank_core.types import Corpus, Document


def words(n: int, prefix: str = "w") -> str:
    return " ".join(f"{prefix}{i}" for i in range(n))


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"mode": "tokens", "size": 10, "overlap": 10}, "must be smaller than the chunk size"),
        ({"mode": "tokens", "size": 10, "overlap": 12}, "must be smaller than the chunk size"),
        ({"mode": "tokens", "size": 0, "overlap": 0}, "positive number of tokens"),
        ({"mode": "tokens", "size": -5, "overlap": 0}, "positive number of tokens"),
        ({"mode": "tokens", "size": 10, "overlap": -1}, "zero or a positive"),
        ({"mode": "tokens", "size": 2.5, "overlap": 0}, "positive number of tokens"),
        ({"mode": "paragraphs"}, "chunk mode must be one of none, tokens, sentences"),
    ],
)
def test_invalid_config_is_a_clear_value_error(kwargs, fragment):
    with pytest.raises(ValueError, match=re.escape(fragment)):
        ChunkConfig(**kwargs)


def test_mode_none_leaves_documents_unchanged():
    docs = [Document("a", words(1000), title="T"), Document("b", "short")]
    assert chunk_documents(docs, ChunkConfig()) == docs
    with pytest.raises(TypeError):
        chunk_documents(docs, {"mode": "tokens"})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "n, size, overlap", [(10, 4, 1), (23, 5, 2), (100, 10, 0), (7, 3, 2), (200, 200, 40), (201, 200, 40)]
)
def test_token_windows_cover_everything_with_exact_overlap(n, size, overlap):
    doc = Document("d", words(n), title="Title", source="f.txt")
    chunks = chunk_documents([doc], ChunkConfig("tokens", size, overlap))
    toks = [c.text.split() for c in chunks]
    step = size - overlap
    # window k starts at token k*step; the last one ends at the last token
    expected_count = 1 if n <= size else 1 + -(-(n - size) // step)
    assert len(chunks) == expected_count
    for k, t in enumerate(toks):
        assert t == [f"w{i}" for i in range(k * step, min(k * step + size, n))]
    for a, b in zip(toks, toks[1:], strict=False):
        assert a[-overlap:] == b[:overlap] if overlap else a[-1] != b[0]
    assert toks[-1][-1] == f"w{n - 1}"
    assert [c.id for c in chunks] == [f"d#c{k}" for k in range(len(chunks))]
    assert all(c.parent_id == "d" and c.title == "Title" and c.source == "f.txt" for c in chunks)


def test_chunk_text_is_a_slice_of_the_original():
    text = "First line\nsecond   line\n\nthird line with  spaces"
    chunks = chunk_document(Document("x", text), ChunkConfig("tokens", 3, 1))
    for c in chunks:
        assert c.text in text
    assert chunks[0].text == "First line\nsecond"


def test_short_document_becomes_one_chunk_c0():
    doc = Document("short", "only a few words here", title="T")
    for mode in ("tokens", "sentences"):
        [chunk] = chunk_documents([doc], ChunkConfig(mode, 50, 10))
        assert chunk == Document("short#c0", "only a few words here", title="T", parent_id="short")


def test_title_only_document_keeps_one_empty_chunk():
    [chunk] = chunk_documents([Document("t", "", title="A title")], ChunkConfig("tokens", 5, 1))
    assert (chunk.id, chunk.text, chunk.title, chunk.parent_id) == ("t#c0", "", "A title", "t")


def test_parent_of():
    assert parent_of("doc7#c3") == "doc7"
    assert parent_of("doc7") == "doc7"
    assert parent_of("a#c1#c12") == "a#c1"
    assert parent_of("a#cx") == "a#cx"
    assert parent_of("path/to file.md#c0") == "path/to file.md"
    for c in chunk_documents([Document("a#b", words(50))], ChunkConfig("tokens", 8, 2)):
        assert parent_of(c.id) == c.parent_id == "a#b"


def test_ids_are_stable_and_independent_of_other_documents():
    a = Document("a", words(57, "a"))
    b = Document("b", words(31, "b"))
    cfg = ChunkConfig("sentences", 12, 3)
    first = chunk_documents([a, b], cfg)
    assert first == chunk_documents([a, b], cfg)
    assert [c for c in first if c.parent_id == "b"] == chunk_documents([b], cfg)
    assert [c for c in chunk_documents([b, a], cfg) if c.parent_id == "a"] == [
        c for c in first if c.parent_id == "a"
    ]


def test_chunk_ids_never_collide_and_duplicate_documents_are_reported():
    # an id that already looks like a chunk id still gets its own suffix, so ids stay unique
    docs = [Document("a", words(30)), Document("a#c1", "x")]
    ids = [c.id for c in chunk_documents(docs, ChunkConfig("tokens", 10, 2))]
    assert ids == ["a#c0", "a#c1", "a#c2", "a#c3", "a#c1#c0"] and len(set(ids)) == len(ids)
    with pytest.raises(ValueError, match="document id 'a' occurs twice"):
        chunk_documents([Document("a", "x"), Document("a", "y")], ChunkConfig("tokens", 10, 2))


SENTENCES = [
    "The wing was tested in a wind tunnel.",  # 8 tokens
    "Lift rose with the angle of attack.",  # 7
    "Dr. Smith measured drag at Mach 2.",  # 7 ("Dr." does not end a sentence)
    "Results agree with theory.",  # 4
    "A final remark closes the report, e.g. on heating.",  # 9
]


def test_sentence_splitter():
    text = " ".join(SENTENCES) + "\n\nA new paragraph without a full stop\nJ. Doe wrote it!"
    got = [text[s:e] for s, e in sentence_spans(text)]
    assert got == SENTENCES + ["A new paragraph without a full stop\nJ. Doe wrote it!"]


def test_sentence_mode_packs_whole_sentences_with_overlap():
    text = " ".join(SENTENCES)
    chunks = chunk_documents([Document("s", text)], ChunkConfig("sentences", size=16, overlap=7))
    texts = [c.text for c in chunks]
    assert texts == [
        SENTENCES[0] + " " + SENTENCES[1],  # 15 tokens; adding 7 more would pass 16
        SENTENCES[1] + " " + SENTENCES[2],  # carries sentence 2 (7 <= overlap)
        SENTENCES[2] + " " + SENTENCES[3],  # 11; adding 9 would pass 16
        SENTENCES[3] + " " + SENTENCES[4],  # carries sentence 4 (4 tokens); 7 + 4 > overlap
    ]
    runs = {" ".join(SENTENCES[i:j]) for i in range(len(SENTENCES)) for j in range(i + 1, len(SENTENCES) + 1)}
    assert all(c.text in runs and count_tokens(c.text) <= 16 for c in chunks)  # whole sentences only


def test_sentence_mode_without_overlap_partitions_the_sentences():
    text = " ".join(SENTENCES * 3)
    chunks = chunk_documents([Document("s", text)], ChunkConfig("sentences", size=20, overlap=0))
    assert " ".join(c.text for c in chunks) == text
    assert all(count_tokens(c.text) <= 20 for c in chunks)


def test_long_sentence_falls_back_to_token_windows():
    long = words(25) + "."
    text = f"Short one here. {long} Tail sentence."
    chunks = chunk_documents([Document("l", text)], ChunkConfig("sentences", size=10, overlap=2))
    texts = [c.text for c in chunks]
    assert texts[0] == "Short one here."
    assert texts[1:4] == [" ".join(long.split()[i : i + 10]) for i in (0, 8, 16)]
    assert texts[-1] == "Tail sentence."
    assert all(count_tokens(t) <= 10 for t in texts)


def test_custom_tokenizer_counts_characters():
    def chars(text):  # every non-space character is one token
        return [(i, i + 1) for i, ch in enumerate(text) if not ch.isspace()]

    chunks = chunk_documents([Document("c", "abcdefghij")], ChunkConfig("tokens", 4, 1), tokenizer=chars)
    assert [c.text for c in chunks] == ["abcd", "defg", "ghij"]
    assert count_tokens("ab cd", chars) == 4


def test_cranfield_chunks_trace_back(cranfield_dir):
    from rerank_core.corpus import load_beir

    corpus = load_beir(cranfield_dir).corpus
    cfg = ChunkConfig("tokens", 64, 16)
    chunks = chunk_documents(corpus, cfg)
    chunked = Corpus(chunks, name="cranfield-chunks")  # ids are unique
    assert {c.parent_id for c in chunks} == set(corpus.ids)
    by_parent: dict[str, list[Document]] = {}
    for c in chunks:
        by_parent.setdefault(c.parent_id, []).append(c)
    for doc in corpus:
        parts = by_parent[doc.id]
        n = count_tokens(doc.text)
        assert len(parts) == (1 if n <= 64 else 1 + -(-(n - 64) // 48))
        rebuilt = parts[0].text.split() + [t for p in parts[1:] for t in p.text.split()[16:]]
        assert rebuilt == doc.text.split()
    assert chunked.get("1#c0").title == corpus.get("1").title
    sent = chunk_documents(corpus, ChunkConfig("sentences", 64, 16))
    assert all(count_tokens(c.text) <= 64 for c in sent)
    assert {c.parent_id for c in sent} == set(corpus.ids)


def test_corpus_stats():
    docs = [
        Document("a", "one two three", source="x.jsonl"),
        Document("b", "four five", source="x.jsonl"),
        Document("c", "", title="T", source="y.md"),
        Document("d#c0", "six seven eight nine", source="y.md", parent_id="d"),
    ]
    lengths = [3, 2, 0, 4]
    st = corpus_stats(docs)
    assert st == {
        "documents": 4,
        "total_tokens": sum(lengths),
        "mean_tokens": sum(lengths) / 4,
        "median_tokens": statistics.median(lengths),
        "max_tokens": 4,
        "min_tokens": 0,
        "empty_text": 1,
        "chunks": 1,
        "parents": 1,
        "sources": {"x.jsonl": 2, "y.md": 2},
    }
    assert corpus_stats([])["documents"] == 0 and corpus_stats([])["mean_tokens"] == 0.0
