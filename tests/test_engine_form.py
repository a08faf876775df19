"""An engine's settings as a form (rerank_core.engine_form): fields from the engine class, typed values
read as TOML or text, the TOML snippet for rerank.toml, and "test connection" against a loopback
``_search`` engine naming the setting to fix for a bad URL, a missing index or a wrong field."""

from __future__ import annotations

import tomllib

import pytest
from engine_servers import SearchEngine
from loopback_servers import LoopbackServer, dead_url

from rerank_core import engine_form
from rerank_core.config import Settings
from rerank_core.errors import ConfigError
from rerank_core.registry import create_retriever
from rerank_core.types import Corpus, Document

DOCS = {
    "a1": {"title": "Lift on wings", "text": "lift is a force on the wings of an aircraft"},
    "a2": {"title": "Drag", "text": "drag on a cylinder in supersonic flow"},
}
CORPUS = Corpus([Document(id=k, title=v["title"], text=v["text"]) for k, v in DOCS.items()], name="aero")


@pytest.fixture
def server():
    with SearchEngine(docs=DOCS).mount(LoopbackServer()) as s:
        yield s


def test_every_engine_has_a_form_from_its_class():
    names = engine_form.engine_names()
    assert {"opensearch", "elasticsearch", "qdrant", "pgvector", "chroma", "http"} <= set(names)
    assert "bm25" not in names and "run" not in names
    fields = {f.name: f for f in engine_form.engine_fields("opensearch")}
    assert fields["index"].required and fields["index"].example == '"docs"'
    assert fields["timeout_s"].advanced and fields["normalize"].is_bool
    assert engine_form.engine_fields("opensearch")[0].name == "index"  # required first
    assert engine_form.secret_names("opensearch") == ("RERANK_OPENSEARCH_PASSWORD",)
    with pytest.raises(ConfigError, match="not a search engine"):
        engine_form.engine_fields("bm25")


def test_typed_values_are_toml_or_text_and_round_trip():
    cases = {
        "100": 100,
        "0.5": 0.5,
        "true": True,
        '["title", "text"]': ["title", "text"],
        '"2024"': "2024",
        "http://localhost:9200": "http://localhost:9200",
        '{"query": {"match": {"text": "{{query}}"}}}': '{"query": {"match": {"text": "{{query}}"}}}',
        "{ a = 1 }": {"a": 1},
        "  ": None,
    }
    for text, value in cases.items():
        assert engine_form.parse_value(text) == value, text
        if value is not None:
            assert engine_form.parse_value(engine_form.show_value(value)) == value
    typed = {
        "url": "http://h:9200",
        "index": "docs",
        "text_field": "text",
        "normalize": False,
        "max_retries": "2",
    }
    options = engine_form.options_from_form("opensearch", typed)
    assert options == {"url": "http://h:9200", "index": "docs", "normalize": False, "max_retries": 2}
    with pytest.raises(ConfigError, match="unknown option"):
        engine_form.options_from_form("opensearch", {"indx": "docs"})
    snippet = engine_form.toml_snippet("opensearch", options)
    assert "RERANK_OPENSEARCH_PASSWORD" in snippet and "password =" not in snippet
    parsed = tomllib.loads(snippet)["methods"]["opensearch"]
    assert parsed == options
    create_retriever("opensearch", Settings(methods={"opensearch": parsed}))  # accepted by the engine


def test_check_connection_gives_one_hit_or_names_the_setting(server):
    def check(**options):
        settings = engine_form.with_engine(Settings(), "opensearch", {"max_retries": 0, **options})
        return engine_form.check_connection("opensearch", settings, CORPUS, "lift wings")

    ok = check(url=server.url, index="docs")
    assert ok.ok and ok.hit is not None and ok.hit.doc_id == "a1" and ok.hit.text == DOCS["a1"]["text"]
    assert "OpenSearch" in ok.label
    cases = [
        ({"url": "localhost", "index": "docs"}, "[methods.opensearch] url"),
        ({"url": dead_url(), "index": "docs", "reconnect_after_s": 0}, "[methods.opensearch] url"),
        ({"url": server.url, "index": "nope"}, "[methods.opensearch] index"),
        ({"url": server.url, "index": "docs", "text_field": "body"}, "[methods.opensearch] text_field"),
        ({"url": server.url}, "[methods.opensearch] index"),
    ]
    for options, setting in cases:
        got = check(**options)
        assert not got.ok and got.setting == setting, (options, got)
        assert got.message
    missing = engine_form.check_connection("http", Settings(), CORPUS)
    assert not missing.ok and missing.setting == "[methods.http] url"
