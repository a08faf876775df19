"""The workspace: stored corpora with content-derived ids, kept across restarts."""

from __future__ import annotations

import json
import threading

import pytest

from rerank_core.errors import CorpusFormatError
from rerank_core.types import Document
from rerank_core.workspace import Chunking, UnknownCorpus, Workspace, corpus_id, legacy_label_id

DOCS = [
    Document("d1", "the cat sat on the mat and purred for a while", title="cats", source="a.jsonl"),
    Document("d2", "stock markets fell sharply on monday morning", source="a.jsonl"),
    Document("d3", "a river flows through the old town under seven bridges", source="b.txt"),
]


def test_the_id_comes_from_content_and_canonical_chunking_only():
    whole = corpus_id(DOCS, Chunking())
    assert whole.startswith("c-") and len(whole) == 18
    # names, sources and the settings that mean nothing for whole documents do not enter it
    renamed = [Document(d.id, d.text, title=d.title, source="other.csv") for d in DOCS]
    assert corpus_id(renamed, Chunking(size=999, overlap=1)) == whole
    # any change of an id, a title, a text, the order or the chunking does
    assert corpus_id([*DOCS[:2], Document("d3", DOCS[2].text + ".")], Chunking()) != whole
    assert corpus_id(list(reversed(DOCS)), Chunking()) != whole
    assert corpus_id([Document("d1", DOCS[0].text), *DOCS[1:]], Chunking()) != whole
    windows = corpus_id(DOCS, Chunking("tokens", 5, 1))
    assert windows != whole and windows != corpus_id(DOCS, Chunking("tokens", 6, 1))
    assert windows != corpus_id(DOCS, Chunking("sentences", 5, 1))
    # the legacy label id is what earlier releases used: the display name, plus the chunking when chunked
    assert legacy_label_id("cranfield", Chunking()) == "cranfield"
    assert legacy_label_id("x", Chunking("tokens", 200, 40)) == "x [token windows of 200 tokens, 40 overlap]"


def test_add_get_list_rename_delete_and_a_restart(tmp_path):
    ws = Workspace(tmp_path)
    stored = ws.add(
        DOCS,
        name="my notes",
        queries={"q1": "where does the cat sit", "q2": "markets"},
        qrels={"q1": {"d1": 2, "d2": 0}},
        tags={"q1": ["animals"]},
        files=["a.jsonl", "b.txt"],
        warnings=["a.jsonl, line 3: skipped"],
    )
    assert stored.id == corpus_id(DOCS, Chunking()) and stored.id in ws
    info = stored.info
    assert (info.documents, info.chunks, info.queries, info.judged_queries, info.judgements) == (
        3,
        3,
        2,
        1,
        2,
    )
    assert [d.source for d in stored.documents] == ["a.jsonl", "a.jsonl", "b.txt"]
    # a new process: everything comes back from disk, equal
    again = Workspace(tmp_path).get(stored.id)
    assert again.documents == stored.documents and again.queries == stored.queries
    assert again.qrels == stored.qrels and again.tags == {"q1": ("animals",)}
    assert again.warnings == ("a.jsonl, line 3: skipped",) and again.info == info
    assert [i.id for i in Workspace(tmp_path).list()] == [stored.id]
    # renaming keeps the id
    ws.rename(stored.id, "renamed")
    assert Workspace(tmp_path).get(stored.id).name == "renamed"
    with pytest.raises(CorpusFormatError, match="empty"):
        ws.rename(stored.id, "  ")
    # deleting removes it for every reader
    ws.delete(stored.id)
    assert stored.id not in ws and Workspace(tmp_path).list() == []
    with pytest.raises(UnknownCorpus, match="no corpus") as err:
        Workspace(tmp_path).get(stored.id)
    assert err.value.hint and "Corpus page" in err.value.hint


def test_the_same_content_is_one_corpus_and_its_judgements_merge(tmp_path):
    ws = Workspace(tmp_path)
    first = ws.add(DOCS, name="first upload", queries={"q1": "cat"}, qrels={"q1": {"d1": 1}})
    second = ws.add(
        DOCS, name="second upload", queries={"q2": "river"}, qrels={"q2": {"d3": 2}, "q1": {"d2": 0}}
    )
    assert second.id == first.id and second.name == "first upload"  # the first name is kept
    assert second.queries == {"q1": "cat", "q2": "river"}
    assert second.qrels == {"q1": {"d1": 1, "d2": 0}, "q2": {"d3": 2}}
    assert Workspace(tmp_path).get(first.id).qrels == second.qrels
    assert len(Workspace(tmp_path).list()) == 1


def test_rechunking_makes_another_corpus_with_the_same_queries(tmp_path):
    ws = Workspace(tmp_path)
    whole = ws.add(DOCS, name="n", queries={"q1": "cat"}, qrels={"q1": {"d1": 1}})
    chunked = ws.rechunk(whole.id, Chunking("tokens", 4, 1))
    assert chunked.id != whole.id and chunked.queries == whole.queries
    assert len(chunked.corpus) > len(DOCS) and all("#c" in d.id for d in chunked.corpus)
    assert chunked.metric_qrels == {}  # document qrels do not apply to chunks
    assert whole.metric_qrels == whole.qrels
    with pytest.raises(CorpusFormatError, match="overlap"):
        ws.rechunk(whole.id, Chunking("tokens", 4, 4))


def test_concurrent_uploads_of_the_same_content_share_one_folder(tmp_path):
    ws_a, ws_b = Workspace(tmp_path), Workspace(tmp_path)  # two server processes on one data directory
    ids, errors = [], []

    def upload(ws):
        try:
            ids.append(ws.add(DOCS, name="same").id)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=upload, args=(ws,)) for ws in (ws_a, ws_b, ws_a, ws_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(ids)) == 1
    assert [p.name for p in (tmp_path / "corpora").iterdir()] == [ids[0]]  # no temporary folder left


def test_an_unwritable_data_directory_keeps_the_corpus_in_memory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")  # a data directory that is a file: nothing can be written under it
    ws = Workspace(blocker)
    stored = ws.add(DOCS, name="n", queries={"q": "cat"})
    assert stored.directory is None and "kept in memory" in (stored.problem or "")
    assert ws.get(stored.id) is stored and [i.id for i in ws.list()] == [stored.id]
    merged = ws.add(DOCS, name="n", queries={"q2": "dog"})
    assert merged.queries == {"q": "cat", "q2": "dog"}
    ws.delete(stored.id)
    assert stored.id not in ws


def test_damaged_or_edited_corpora_are_reported_not_served(tmp_path):
    ws = Workspace(tmp_path)
    stored = ws.add(DOCS, name="n")
    manifest = tmp_path / "corpora" / stored.id / "manifest.json"
    corpus_file = tmp_path / "corpora" / stored.id / "corpus.jsonl"
    corpus_file.write_text(corpus_file.read_text().replace("purred", "barked"))
    with pytest.raises(CorpusFormatError, match="does not match its id"):
        Workspace(tmp_path).get(stored.id)
    manifest.write_text("{not json")
    with pytest.raises(CorpusFormatError, match="cannot be read"):
        Workspace(tmp_path).get(stored.id)
    assert Workspace(tmp_path).list() == []  # a damaged manifest is not offered
    for bad in ("", "cranfield", "c-xyz", "c-0123456789abcdeZ", "../etc"):
        with pytest.raises(UnknownCorpus):
            ws.get(bad)


def test_empty_corpus_is_refused(tmp_path):
    with pytest.raises(CorpusFormatError, match="no documents"):
        Workspace(tmp_path).add([], name="empty")


def test_the_sample_is_stored_once_with_its_judgements(tmp_path):
    ws = Workspace(tmp_path)
    sample = ws.sample()
    assert sample.is_sample and sample.queries and sample.qrels
    assert ws.sample().id == sample.id and len(ws.list()) == 1
    manifest = json.loads((tmp_path / "corpora" / sample.id / "manifest.json").read_text())
    assert manifest["origin"] == "sample" and manifest["legacy_ids"] == [sample.name]
