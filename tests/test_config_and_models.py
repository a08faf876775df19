"""Settings from file + environment, and where model weights are looked for."""

from __future__ import annotations

import time

import pytest

from rerank_core.config import Settings, load_settings
from rerank_core.errors import ConfigError, ModelNotFound
from rerank_core.models import MINILM_ID, resolve_model


def test_env_wins_over_file_and_secrets_only_from_env(tmp_path):
    cfg = tmp_path / "rerank.toml"
    cfg.write_text('openai_model = "from-file"\nrequest_timeout_s = 5\n[methods.llm]\nmode = "listwise"\n')
    s = load_settings(cfg, env={"RERANK_OPENAI_MODEL": "from-env", "OPENAI_API_KEY": "sk-secret"})
    assert s.openai_model == "from-env"
    assert s.request_timeout_s == 5.0
    assert s.method_options("llm") == {"mode": "listwise"}
    assert s.openai_api_key == "sk-secret"
    assert "sk-secret" not in repr(s)


def test_example_config_is_valid(tmp_path):
    from pathlib import Path

    s = load_settings(Path(__file__).resolve().parents[1] / "rerank.example.toml", env={})
    assert s.cohere_model == "rerank-v3.5" and s.method_options("cross-encoder")["batch_size"] == 32


@pytest.mark.parametrize(
    "text, fragment",
    [
        ('api_key = "x"\n', "unknown setting 'api_key'"),
        ("request_timeout_s = 'soon'\n", "invalid value"),
        ("this is not toml", "cannot parse"),
    ],
)
def test_bad_config_says_what_is_wrong(tmp_path, text, fragment):
    cfg = tmp_path / "rerank.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=fragment):
        load_settings(cfg, env={})


def test_missing_explicit_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(env={"RERANK_CONFIG": str(tmp_path / "nope.toml")})


def test_with_secrets_takes_environment_style_names():
    s = Settings().with_secrets(OPENAI_API_KEY="k", COHERE_API_KEY=None)
    assert s.openai_api_key == "k" and s.cohere_api_key is None
    assert s.with_secrets({"OPENAI_API_KEY": ""}).openai_api_key == "k"  # an empty value keeps the secret
    with pytest.raises(ConfigError, match="not a secret name"):
        Settings().with_secrets(github_token="t")


def test_a_backend_sees_only_the_secrets_it_declares():
    from rerank_core.registry import create_reranker, method_key

    s = Settings().with_secrets(OPENAI_API_KEY="sk-one", COHERE_API_KEY="co-one")
    cohere = create_reranker("cohere", s)
    assert cohere.settings.cohere_api_key == "co-one" and cohere.settings.openai_api_key is None
    local = create_reranker("late-interaction", s)
    assert local.settings.secrets == {}
    # a hosted method's cache key changes with its key; a local method's does not
    other = s.with_secrets(COHERE_API_KEY="co-two", OPENAI_API_KEY="sk-two")
    assert method_key("cohere", s) != method_key("cohere", other)
    assert method_key("late-interaction", s) == method_key("late-interaction", other)
    assert "co-one" not in method_key("cohere", s)


def test_every_backend_describes_itself():
    from rerank_core.registry import methods, secret_names

    infos = methods()
    assert {i.name for i in infos} >= {"bm25", "dense", "hybrid", "cross-encoder", "llm", "cohere"}
    for info in infos:
        assert info.title and info.description, info.name
        assert info.hosted or not info.secrets or info.name == "llm", info.name
    assert {"OPENAI_API_KEY", "COHERE_API_KEY"} <= set(secret_names())


def test_resolution_order_path_then_models_dir(tmp_path):
    models = tmp_path / "models"
    (models / "org--name").mkdir(parents=True)
    assert resolve_model("org/name", models).source == "models_dir"
    explicit = tmp_path / "mine"
    explicit.mkdir()
    assert resolve_model(str(explicit), models).source == "path"


def test_marker_file_required(tmp_path):
    models = tmp_path / "models"
    (models / "colbert").mkdir(parents=True)
    with pytest.raises(ModelNotFound, match="has no artifact.metadata"):
        resolve_model("org/colbert", models, marker="artifact.metadata")


def test_packaged_minilm_resolves_offline(minilm_path):
    resolved = resolve_model(MINILM_ID)
    assert resolved.source == "package" and resolved.location == str(minilm_path)


def test_unavailable_model_fails_fast_and_names_places(tmp_path):
    t0 = time.perf_counter()
    with pytest.raises(ModelNotFound) as info:
        resolve_model("cross-encoder/ms-marco-MiniLM-L-6-v2", tmp_path)
    assert time.perf_counter() - t0 < 5
    msg = str(info.value)
    assert "cross-encoder/ms-marco-MiniLM-L-6-v2" in msg and str(tmp_path) in msg
    assert "HF_HUB_OFFLINE" in msg and "Fix:" in msg


def test_missing_local_path_is_not_looked_up_on_the_hub(tmp_path):
    with pytest.raises(ModelNotFound, match="no such path"):
        resolve_model(str(tmp_path / "absent-model"))
