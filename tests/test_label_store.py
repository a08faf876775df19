"""The label store's newer parts, each on SQLite and on a real PostgreSQL server: rationales, judge
selection (people only), shadow-log fallback/precision/usage, tags, guidelines, identity changes
(rekey_corpus, rekey_queries, resolve_query_id), deleting and summarising a corpus, concurrency."""

from __future__ import annotations

import threading

import pytest

from rerank_core import readers
from rerank_core.judgements import (
    SHADOW_COLUMNS,
    InvalidGrade,
    JudgementStore,
    is_llm_judge,
    query_id_for,
    shadow_log_csv,
)
from rerank_core.types import MethodError, RankedItem, RerankResult, ScoreScale


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path) -> str:
    if request.param == "postgres":
        return request.getfixturevalue("postgres_url")
    return f"sqlite:///{tmp_path / 'judgements.sqlite'}"


@pytest.fixture
def store(db_url):
    s = JudgementStore(db_url)
    yield s
    s.close()


# -- rationales and judges ------------------------------------------------------------------------


def test_a_grade_keeps_its_rationale_through_history_and_imports(store):
    store.set_grade("c", "q", "d", 2, judge="llm:gpt-4o-mini", rationale="states the similarity law")
    store.set_grade("c", "q", "e", 0, judge="ann")
    (llm,) = store.judgements("c", judge="llm:gpt-4o-mini")
    assert llm.rationale == "states the similarity law" and llm.by_llm
    assert store.judgements("c", judge="ann")[0].rationale is None
    assert store.history("c")[0]["rationale"] == "states the similarity law"
    # 6-tuples carry a rationale; importing the same again writes nothing
    rows = [("q", "f", 1, "bob", None, "partly"), ("q", "g", 3, "bob", "2026-01-02T03:04:05Z", None)]
    assert store.import_judgements("c", rows) == 2
    assert store.import_judgements("c", rows) == 0
    # a 5-tuple with the same grade does not clobber a stored rationale; a new rationale is written
    assert store.import_judgements("c", [("q", "f", 1, "bob", None)]) == 0
    assert store.import_judgements("c", [("q", "f", 1, "bob", None, "on reflection, partly")]) == 1
    bob = {j.doc_id: j for j in store.judgements("c", judge="bob")}
    assert bob["f"].rationale == "on reflection, partly"
    assert bob["g"].created_at.isoformat() == "2026-01-02T03:04:05+00:00"
    with pytest.raises(InvalidGrade, match="7 fields"):
        store.import_judgements("c", [("q", "f", 1, "bob", None, None, "extra")])
    with pytest.raises(InvalidGrade, match="rationale is text"):
        store.set_grade("c", "q", "d", 1, rationale=3)  # type: ignore[arg-type]


def test_people_only_and_chosen_judges(store):
    assert is_llm_judge("llm:qwen") and not is_llm_judge("LLM:qwen") and not is_llm_judge("ann")
    store.set_grade("c", "q", "d1", 3, judge="ann")
    store.set_grade("c", "q", "d1", 0, judge="llm:gpt-4o-mini")
    store.set_grade("c", "q", "d2", 2, judge="llm:gpt-4o-mini")
    store.set_grade("c", "q", "d3", 1, judge="LLM:shouting")  # not the prefix: a person's name
    assert store.grades("c", "q") == {"d1": 0, "d2": 2, "d3": 1}  # newest graded judge wins
    assert store.grades("c", "q", people_only=True) == {"d1": 3, "d3": 1}
    assert store.qrels("c", people_only=True) == {"q": {"d1": 3, "d3": 1}}
    assert store.qrels("c", judges=["llm:gpt-4o-mini"]) == {"q": {"d1": 0, "d2": 2}}
    assert store.qrels("c", judges=["ann", "LLM:shouting"]) == {"q": {"d1": 3, "d3": 1}}
    assert store.qrels("c", judges=[]) == {}
    assert {j.judge for j in store.judgements("c", people_only=True)} == {"ann", "LLM:shouting"}
    assert store.judges("c") == ["LLM:shouting", "ann", "llm:gpt-4o-mini"]
    with pytest.raises(TypeError, match="sequence of judge names"):
        store.qrels("c", judges="ann")  # type: ignore[arg-type]


# -- shadow log -----------------------------------------------------------------------------------


def _result(method: str, ids: list[str], **kw) -> RerankResult:
    items = tuple(
        RankedItem(doc_id=d, rank=i + 1, score=10.0 - i, first_stage_rank=i + 1) for i, d in enumerate(ids)
    )
    return RerankResult(method=method, scale=ScoreScale.API_RELEVANCE, items=items, latency_ms=5.0, **kw)


def test_shadow_log_keeps_fallback_precision_and_usage(store):
    results = [
        _result("cross-encoder", ["a", "b"], precision="bf16"),
        _result(
            "cohere",
            ["b", "a"],
            fallback=True,
            error=MethodError(kind="timeout", message="took too long"),
            usage={"search_units": 1.0},
        ),
    ]
    assert store.log_results("c", "what is lift", results, first_stage="bm25", depth=20) == 2
    cohere, cross = store.shadow_log("c")
    assert cross["precision"] == "bf16" and cross["fallback"] is False and cross["usage"] == {}
    assert cross["extra"] == {"scale": "API relevance (0-1)"}
    assert cohere["fallback"] is True and cohere["precision"] is None and cohere["available"] is False
    assert cohere["usage"] == {"search_units": 1.0} and "took too long" in cohere["error"]
    store.log_run("c", "q", "bm25", extra={"usage": {"tokens": 12}}, fallback=False, precision="fp32")
    (latest, *_) = store.shadow_log("c")
    assert latest["usage"] == {"tokens": 12} and latest["precision"] == "fp32"

    text = shadow_log_csv(list(reversed(store.shadow_log("c"))))
    header, first, second, third = text.strip().splitlines()
    assert header == ",".join(SHADOW_COLUMNS) and header.endswith("fallback,precision,usage,extra")
    assert first.endswith(',False,bf16,,"{""scale"": ""API relevance (0-1)""}"')
    assert ',True,,"{""search_units"": 1.0}",' in second
    assert third.endswith(',False,fp32,"{""tokens"": 12}",')


# -- tags and guidelines --------------------------------------------------------------------------


def test_tags_per_query(store):
    assert store.set_tags("c", {"q1": ["hard", "numeric", "hard", " "], "q2": ["easy"]}) == 3
    assert store.tags("c") == {"q1": ("hard", "numeric"), "q2": ("easy",)}
    assert store.set_tags("c", {"q1": ["aero"], "q2": []}) == 1  # replaces; an empty list clears
    assert store.tags("c") == {"q1": ("aero",)}
    assert store.tags("other") == {}
    with pytest.raises(InvalidGrade, match="string"):
        store.set_tags("c", {"q1": "hard"})  # type: ignore[dict-item]
    assert "c" in store.corpora()  # a corpus with only tags is still a corpus


def test_guideline_per_corpus(store):
    assert store.guideline("c") is None
    store.set_guideline("c", "3 = answers the question fully.", updated_by="ann")
    g = store.guideline("c")
    assert g.text == "3 = answers the question fully." and g.updated_by == "ann" and g.updated_at.tzinfo
    store.set_guideline("c", "3 = full answer; 2 = most of it.")
    g2 = store.guideline("c")
    assert g2.text.startswith("3 = full answer") and g2.updated_by is None and g2.updated_at >= g.updated_at
    store.set_guideline("c", "  ")  # an empty guideline removes it
    assert store.guideline("c") is None


# -- identity changes -----------------------------------------------------------------------------


def test_rekey_corpus_moves_everything_once_and_keeps_history(store):
    old, new = "Sample [chunks: 200 words]", "corpus-3fa9c2"
    store.add_query(old, "what is lift", query_id="q1")
    store.set_grade(old, "q1", "d1", 1, judge="ann")
    store.set_grade(old, "q1", "d2", 2, judge="ann")
    store.set_tags(old, {"q1": ["aero", "basic"]})
    store.set_guideline(old, "old guideline")
    store.log_run(old, "what is lift", "bm25")
    # the new id already holds a newer grade of d1, the same query and one of the tags
    store.add_query(new, "what is lift", query_id="q1")
    store.set_grade(new, "q1", "d1", 3, judge="ann")
    store.set_tags(new, {"q1": ["aero"]})

    moved = store.rekey_corpus(old, new)
    # two judgements, the shadow entry, the tag 'basic' and the guideline; the query was there already
    assert moved == 2 + 1 + 1 + 1
    assert store.qrels(new) == {"q1": {"d1": 3, "d2": 2}}  # the newest row still wins
    assert len(store.history(new)) == 3  # history of both kept
    assert store.queries(new) == {"q1": "what is lift"} and store.tags(new) == {"q1": ("aero", "basic")}
    assert store.guideline(new).text == "old guideline" and len(store.shadow_log(new)) == 1
    assert old not in store.corpora() and store.corpus_aliases() == {old: new}
    assert store.rekey_corpus(old, new) == 0  # idempotent
    assert store.rekey_corpus(new, new) == 0
    # a second move updates the alias chain
    store.rekey_corpus(new, "corpus-final")
    assert store.corpus_aliases() == {old: "corpus-final", new: "corpus-final"}
    assert store.qrels("corpus-final") == {"q1": {"d1": 3, "d2": 2}}


def test_rekey_corpus_keeps_the_newer_guideline(store):
    store.set_guideline("old", "older text")
    store.set_guideline("new", "newer text")
    store.rekey_corpus("old", "new")
    assert store.guideline("new").text == "newer text" and store.guideline("old") is None
    store.set_guideline("target", "stale")
    store.set_guideline("new", "newest, to move")
    store.rekey_corpus("new", "target")
    assert store.guideline("target").text == "newest, to move" and store.guideline("new") is None


def test_rekey_queries_joins_a_typed_query_to_the_dataset_query(store):
    typed = store.add_query("cran", "What similarity laws must be obeyed?")
    assert typed == query_id_for("What similarity laws must be obeyed?")
    store.set_grade("cran", typed, "184", 3, judge="ann")
    store.set_grade("cran", typed, "29", 1, judge="ann")
    store.set_tags("cran", {typed: ["typed"]})
    store.import_qrels(
        "cran", {"1": {"184": 2, "12": 1}}, queries={"1": "what similarity laws must be obeyed?"}
    )
    mapping = store.dataset_query_mapping("cran", {"1": "what similarity laws must be obeyed?"})
    assert mapping == {typed: "1"}
    assert store.rekey_queries("cran", mapping) == 2 + 1  # two judgements and the tag (the text was known)
    assert store.qrels("cran") == {"1": {"184": 2, "29": 1, "12": 1}}  # import newer than ann's 3
    assert store.qrels("cran", judge="ann") == {"1": {"184": 3, "29": 1}}
    assert store.queries("cran") == {"1": "what similarity laws must be obeyed?"}
    assert store.tags("cran") == {"1": ("typed",)}
    assert store.rekey_queries("cran", mapping) == 0  # idempotent
    with pytest.raises(InvalidGrade, match="both moved and moved to"):
        store.rekey_queries("cran", {"a": "b", "b": "c"})


def test_resolve_query_id_on_cranfield(store, cranfield_dir):
    dataset = readers.read_beir(cranfield_dir).dataset
    text_1 = dataset.queries["1"]
    typed = "  " + text_1.upper().replace(" ", "   ") + "\t"
    assert store.resolve_query_id("cran", typed, dataset.queries) == "1"
    # without the dataset: the stored queries decide (after an import), else the typed id
    assert store.resolve_query_id("cran", typed) == query_id_for(typed)
    store.import_qrels("cran", dataset.qrels, queries=dataset.queries)
    assert store.resolve_query_id("cran", typed) == "1"
    assert store.resolve_query_id("cran", "a query nobody asked", dataset.queries) == query_id_for(
        "a query nobody asked"
    )
    # a stored typed query with the same text does not beat the dataset's id
    store.add_query("other", text_1)
    assert store.resolve_query_id("other", text_1) == query_id_for(text_1)
    store.add_query("other", text_1, query_id="1")
    assert store.resolve_query_id("other", text_1) == "1"  # an id from a file beats a hash id
    with pytest.raises(InvalidGrade):
        store.resolve_query_id("cran", "   ")


def test_resolve_query_id_indexes_once_for_many_lookups(store, monkeypatch):
    import rerank_core.judgements as judgements

    dataset_queries = {str(i): f"query number {i} about boundary layers" for i in range(10_000)}
    calls = 0
    real = judgements.normalise_query

    def counting(text: str) -> str:
        nonlocal calls
        calls += 1
        return real(text)

    monkeypatch.setattr(judgements, "normalise_query", counting)
    for i in range(200):
        assert store.resolve_query_id(
            "c", f"Query Number {i} about  boundary layers", dataset_queries
        ) == str(i)
    # one index of the 10,000 texts plus one normalisation per lookup, not 200 x 10,000
    assert calls == 10_000 + 200
    store.add_query("c", "stored only", query_id="s1")
    calls = 0
    for _ in range(50):
        assert store.resolve_query_id("c", "STORED ONLY") == "s1"
    assert calls == 1 + 50  # the stored index is built once, then reused until the queries change
    store.add_query("c", "another stored", query_id="s2")
    assert store.resolve_query_id("c", "another stored") == "s2"


# -- housekeeping ---------------------------------------------------------------------------------


def test_delete_corpus_keeps_judgements_unless_asked_and_summary(store):
    store.add_query("c", "first", query_id="q1")
    store.add_query("c", "second", query_id="q2")
    store.set_grade("c", "q1", "d1", 2, judge="ann")
    store.set_grade("c", "q1", "d2", None, judge="ann")
    store.set_grade("c", "q1", "d1", 1, judge="llm:x")
    store.set_tags("c", {"q2": ["hard"]})
    store.set_guideline("c", "be strict")
    store.log_run("c", "first", "bm25")
    store.log_run("c", "first", "dense")
    store.set_grade("keep", "q", "d", 1)
    summary = store.corpus_summary("c")
    assert (summary.queries, summary.judged_queries, summary.judgements, summary.skipped) == (2, 1, 2, 1)
    assert summary.judges == ("ann", "llm:x") and summary.shadow_entries == 2
    assert summary.tagged_queries == 1 and summary.has_guideline

    counts = store.delete_corpus("c")
    assert counts == {"shadow_log": 2, "judgements": 0, "queries": 0, "query_tags": 0, "guidelines": 0}
    assert store.corpus_summary("c").judgements == 2 and store.shadow_log("c") == []
    counts = store.delete_corpus("c", judgements=True)
    assert counts == {"shadow_log": 0, "judgements": 3, "queries": 2, "query_tags": 1, "guidelines": 1}
    assert store.corpora() == ["keep"]
    empty = store.corpus_summary("c")
    assert (empty.queries, empty.judgements, empty.judges, empty.has_guideline) == (0, 0, (), False)


def test_ids_with_nul_are_refused_and_texts_with_nul_are_kept_readable(store):
    with pytest.raises(InvalidGrade, match="NUL"):
        store.set_grade("c", "q\x00", "d", 1)
    qid = store.add_query("c", "lift\x00drag")
    assert store.queries("c") == {qid: "lift\ufffddrag"}


# -- concurrency ----------------------------------------------------------------------------------


def _together(n: int, work) -> list[BaseException]:
    errors: list[BaseException] = []
    start = threading.Barrier(n)

    def run(i: int) -> None:
        try:
            start.wait()
            work(i)
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_concurrent_undos_by_one_judge_take_back_one_action_each(db_url):
    with JudgementStore(db_url) as s:
        for i in range(12):
            s.set_grade("c", "q", f"d{i}", i % 4)
    stores = [JudgementStore(db_url) for _ in range(6)]
    undone: list[str] = []
    errors = _together(6, lambda i: undone.append(stores[i].undo("c").doc_id))
    assert errors == []
    assert sorted(undone) == sorted(f"d{i}" for i in range(6, 12))  # the six newest, each once
    assert stores[0].grades("c", "q") == {f"d{i}": i % 4 for i in range(6)}
    for s in stores:
        s.close()


def test_concurrent_writers_of_the_same_query_tag_and_guideline_do_not_fail(db_url):
    stores = [JudgementStore(db_url) for _ in range(6)]

    def work(i: int) -> None:
        qid = stores[i].add_query("c", "what is lift")
        stores[i].set_tags("c", {qid: ["aero"]})
        stores[i].set_guideline("c", f"guideline {i}", updated_by=f"judge{i}")
        stores[i].set_grade("c", qid, f"d{i}", 2, judge=f"judge{i}")

    assert _together(6, work) == []
    qid = query_id_for("what is lift")
    assert stores[0].queries("c") == {qid: "what is lift"} and stores[0].tags("c") == {qid: ("aero",)}
    assert stores[0].guideline("c").text.startswith("guideline ")
    assert len(stores[0].qrels("c")[qid]) == 6
    for s in stores:
        s.close()
