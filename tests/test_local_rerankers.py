"""The local neural rerankers against the libraries they wrap, with tiny random-weight models.

The contract every reranker keeps is in test_reranker_contract.py; here each backend is checked
against a direct call of its library on the same inputs, plus its own options and failure modes.
"""

from __future__ import annotations

import logging
import math
import shutil

import numpy as np
import pytest

from rerank_core.config import Settings
from rerank_core.errors import InvalidMethod, MethodFailed, ModelNotFound
from rerank_core.registry import create_reranker
from rerank_core.rerankers.colbert import map_results
from rerank_core.types import Candidate, MethodSpec, ScoreScale

pytest_plugins = ["tiny_models"]

QUERY = "what is the lift force on a wing"
TEXTS = [
    "lift is a force that acts on the wings of an aircraft in flight",
    "drag on a cylinder in supersonic flow",
    "the boundary layer on a flat plate becomes turbulent at high reynolds number",
    "a shock wave forms ahead of a blunt body at hypersonic speed",
    "heat transfer to the skin of a cone",
    "coffee and bread for breakfast",
]
LONG = "the boundary layer on the wing becomes turbulent " * 6  # about 50 tokens


def cands(texts=TEXTS) -> list[Candidate]:
    return [
        Candidate(doc_id=f"d{i}", text=t, first_stage_rank=i + 1, first_stage_score=1.0 / (i + 1))
        for i, t in enumerate(texts)
    ]


def scores_by_input_order(result, candidates) -> list[float]:
    by_id = {it.doc_id: it.score for it in result.items}
    return [by_id[c.doc_id] for c in candidates]


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


# -- cross-encoder --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def library_cross_encoder(tiny_cross_encoder_dir):
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(tiny_cross_encoder_dir), device="cpu")


def test_cross_encoder_gives_the_library_logits(tiny_cross_encoder_dir, library_cross_encoder, settings):
    import torch

    c = cands()
    result = create_reranker(MethodSpec("cross-encoder", str(tiny_cross_encoder_dir)), settings).rerank(
        QUERY, c
    )
    assert result.ok and result.scale == ScoreScale.LOGIT and "raw logits" in result.label
    direct = library_cross_encoder.predict(
        [(QUERY, t) for t in TEXTS], activation_fn=torch.nn.Identity(), show_progress_bar=False
    )
    np.testing.assert_allclose(scores_by_input_order(result, c), direct, rtol=1e-5, atol=1e-6)
    assert result.ids == [c[i].doc_id for i in np.argsort(-direct, kind="stable")]
    assert len(set(np.round(direct, 4))) == len(TEXTS)  # the tiny model tells the texts apart


def test_cross_encoder_truncation_cuts_the_passage_end(tiny_cross_encoder_dir, settings):
    reranker = create_reranker(
        MethodSpec("cross-encoder", str(tiny_cross_encoder_dir)), settings, max_length=16
    )
    c = cands([LONG, LONG + " and more words past the limit", "lift"])
    result = reranker.rerank("lift", c)
    assert sorted(result.truncated_ids) == ["d0", "d1"]
    assert reranker.effective_max_length == 16
    assert reranker.count_tokens("lift", ["lift"]) == [5]  # [CLS] lift [SEP] lift [SEP]
    s = {it.doc_id: it.score for it in result.items}
    assert s["d0"] == pytest.approx(s["d1"], abs=1e-6)  # the model read the same first 16 tokens
    full = create_reranker(MethodSpec("cross-encoder", str(tiny_cross_encoder_dir)), settings).rerank(
        "lift", c
    )
    f = {it.doc_id: it.score for it in full.items}
    assert full.truncated_ids == [] and abs(f["d0"] - f["d1"]) > 1e-5


def test_cross_encoder_model_activation_is_labelled_honestly(tmp_path, settings):
    from tiny_models import build_tiny_cross_encoder

    sigmoid_model = build_tiny_cross_encoder(tmp_path / "sigmoid", activation_fn=None)  # bge-style config
    raw = create_reranker(MethodSpec("cross-encoder", str(sigmoid_model)), settings).rerank(QUERY, cands())
    activated = create_reranker(
        MethodSpec("cross-encoder", str(sigmoid_model)), settings, activation="model"
    ).rerank(QUERY, cands())
    assert raw.scale == ScoreScale.LOGIT and activated.scale == ScoreScale.PROBABILITY
    assert "probabilities" in activated.label
    assert activated.ids == raw.ids
    for a, r in zip(activated.items, raw.items, strict=True):
        assert a.score == pytest.approx(1 / (1 + math.exp(-r.score)), abs=1e-6)


def test_cross_encoder_two_class_model_scores_relevant_class_probability(tmp_path, settings):
    import torch
    from sentence_transformers import CrossEncoder
    from tiny_models import TINY, build_random_cross_encoder

    path = build_random_cross_encoder(tmp_path / "two", **TINY, vocab_size=None, init_std=0.2, num_labels=2)
    result = create_reranker(MethodSpec("cross-encoder", str(path)), settings).rerank(QUERY, cands())
    assert result.ok and result.scale == ScoreScale.PROBABILITY
    logits = CrossEncoder(str(path), device="cpu").predict(
        [(QUERY, t) for t in TEXTS], activation_fn=torch.nn.Identity(), show_progress_bar=False
    )
    expected = torch.softmax(torch.tensor(logits), dim=-1)[:, 1].numpy()
    np.testing.assert_allclose(scores_by_input_order(result, cands()), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"batch_size": 0}, "batch_size=0"),
        ({"max_length": "long"}, "max_length='long'"),
        ({"activation": "softmax"}, "activation='softmax'"),
        ({"batchsize": 8}, "'batchsize'"),
    ],
)
def test_cross_encoder_bad_options_say_what_is_wrong(options, fragment):
    with pytest.raises(InvalidMethod, match=fragment) as info:
        create_reranker("cross-encoder", **options)
    assert info.value.hint


def test_cross_encoder_batch_size_does_not_change_scores(tiny_cross_encoder_dir, settings):
    spec = MethodSpec("cross-encoder", str(tiny_cross_encoder_dir))
    one = create_reranker(spec, settings, batch_size=1).rerank(QUERY, cands())
    many = create_reranker(spec, settings, batch_size=32).rerank(QUERY, cands())
    assert one.ids == many.ids
    np.testing.assert_allclose([it.score for it in one.items], [it.score for it in many.items], atol=1e-5)


def test_cross_encoder_from_models_dir(tiny_cross_encoder_dir, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(tiny_cross_encoder_dir, models / "my-org--tiny-ce")
    result = create_reranker(
        "cross-encoder:my-org/tiny-ce", Settings(data_dir=tmp_path, models_dir=models)
    ).rerank(QUERY, cands())
    assert result.ok and len(result.items) == len(TEXTS)


# -- FlashRank ------------------------------------------------------------------------------------
def flashrank(tiny_flashrank_cache, settings, **options):
    cache_dir, name = tiny_flashrank_cache
    return create_reranker(MethodSpec("flashrank", name), settings, cache_dir=str(cache_dir), **options)


def test_flashrank_gives_the_library_scores(tiny_flashrank_cache, settings):
    from flashrank import Ranker, RerankRequest

    cache_dir, name = tiny_flashrank_cache
    result = flashrank(tiny_flashrank_cache, settings).rerank(QUERY, cands())
    assert result.ok and result.scale == ScoreScale.PROBABILITY
    ranker = Ranker(model_name=name, cache_dir=str(cache_dir), log_level="WARNING")
    direct = ranker.rerank(
        RerankRequest(query=QUERY, passages=[{"id": i, "text": t} for i, t in enumerate(TEXTS)])
    )
    expected = [0.0] * len(TEXTS)
    for p in direct:
        expected[p["id"]] = float(p["score"])
    np.testing.assert_allclose(scores_by_input_order(result, cands()), expected, rtol=1e-6)
    assert all(0 < s < 1 for s in expected)


def test_flashrank_keeps_to_the_process_thread_limit(tiny_flashrank_cache, settings, monkeypatch):
    """FlashRank's own ONNX session would take every core; ours takes torch's count ([limits] torch_threads)."""
    import torch

    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    reranker = flashrank(tiny_flashrank_cache, settings)
    assert reranker.rerank(QUERY, cands()).ok
    assert reranker._ranker.session.get_session_options().intra_op_num_threads == 1


def test_flashrank_is_the_sigmoid_of_the_same_cross_encoder(
    tiny_flashrank_cache, tiny_cross_encoder_dir, library_cross_encoder, settings
):
    """Both tiny models have the same seeded weights: FlashRank's ONNX pass and the torch pass agree."""
    import torch

    result = flashrank(tiny_flashrank_cache, settings).rerank(QUERY, cands())
    logits = library_cross_encoder.predict(
        [(QUERY, t) for t in TEXTS], activation_fn=torch.nn.Identity(), show_progress_bar=False
    )
    np.testing.assert_allclose(scores_by_input_order(result, cands()), 1 / (1 + np.exp(-logits)), atol=1e-5)


def test_flashrank_batch_size_splits_without_changing_scores(tiny_flashrank_cache, settings, monkeypatch):
    from rerank_core.rerankers.flashrank import FlashRankReranker

    sizes: list[int] = []
    original = FlashRankReranker._run

    def spy(self, encodings):
        sizes.append(len(encodings))
        return original(self, encodings)

    monkeypatch.setattr(FlashRankReranker, "_run", spy)
    whole = flashrank(tiny_flashrank_cache, settings).rerank(QUERY, cands())
    assert sizes == [6]
    sizes.clear()
    batched = flashrank(tiny_flashrank_cache, settings, batch_size=4).rerank(QUERY, cands())
    assert sizes == [4, 2]
    assert batched.ids == whole.ids
    np.testing.assert_allclose(
        [it.score for it in batched.items], [it.score for it in whole.items], atol=1e-6
    )


def test_flashrank_truncation_cuts_the_passage_end(tiny_flashrank_cache, settings):
    reranker = flashrank(tiny_flashrank_cache, settings, max_length=16)
    result = reranker.rerank("lift", cands([LONG, LONG + " and more words past the limit", "lift"]))
    assert sorted(result.truncated_ids) == ["d0", "d1"] and reranker.effective_max_length == 16
    s = {it.doc_id: it.score for it in result.items}
    assert s["d0"] == pytest.approx(s["d1"], abs=1e-7)


def test_flashrank_unknown_or_listwise_model_lists_the_valid_ones(settings):
    for name, fragment in [
        ("ms-marco-TinyBERT", "is not a FlashRank model"),
        ("rank_zephyr_7b_v1_full", "listwise"),
    ]:
        reranker = create_reranker(MethodSpec("flashrank", name), settings)
        result = reranker.rerank(QUERY, cands())
        assert result.error.kind == "invalid-method" and fragment in result.error.message
        assert (
            "ms-marco-TinyBERT-L-2-v2" in result.error.hint and "ms-marco-MiniLM-L-12-v2" in result.error.hint
        )
        with pytest.raises(InvalidMethod):
            reranker.load()


def test_flashrank_found_in_models_dir_and_by_path(tiny_flashrank_cache, tmp_path):
    cache_dir, name = tiny_flashrank_cache
    settings = Settings(data_dir=tmp_path / "data", models_dir=cache_dir)  # empty cache, model in models_dir
    reranker = create_reranker(MethodSpec("flashrank", name), settings)
    assert reranker.rerank(QUERY, cands()).ok
    assert reranker.model_dir == cache_dir / name
    by_path = create_reranker(
        MethodSpec("flashrank", str(cache_dir / name)), Settings(data_dir=tmp_path / "data")
    )
    result = by_path.rerank(QUERY, cands())
    assert result.ok and "ms-marco-TinyBERT-L-2-v2" in result.label


def test_flashrank_incomplete_folder_is_named_not_downloaded_into(settings, tmp_path):
    (tmp_path / "cache" / "ms-marco-MiniLM-L-12-v2").mkdir(parents=True)
    reranker = create_reranker(
        "flashrank:ms-marco-MiniLM-L-12-v2", settings, cache_dir=str(tmp_path / "cache")
    )
    with pytest.raises(ModelNotFound) as info:
        reranker.load()
    assert "exists but has no flashrank-MiniLM-L-12-v2_Q.onnx" in info.value.message
    assert "delete" in info.value.hint


def test_flashrank_leaves_root_logging_alone(tiny_flashrank_cache, settings):
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    assert flashrank(tiny_flashrank_cache, settings).rerank(QUERY, cands()).ok
    assert (list(root.handlers), root.level) == before


# -- ColBERT --------------------------------------------------------------------------------------
def colbert(tiny_colbert_dir, settings, **options):
    return create_reranker(MethodSpec("colbert", str(tiny_colbert_dir)), settings, **options)


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")
def test_colbert_gives_ragatouille_scores_and_stays_quiet(tiny_colbert_dir, settings, capfd):
    from ragatouille import RAGPretrainedModel

    reranker = colbert(tiny_colbert_dir, settings)
    reranker.load()
    capfd.readouterr()
    result = reranker.rerank(QUERY, cands())
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # no tqdm bars, no prints
    assert result.ok and result.scale == ScoreScale.MAXSIM

    direct = RAGPretrainedModel.from_pretrained(str(tiny_colbert_dir), verbose=0).rerank(
        QUERY, TEXTS, k=len(TEXTS)
    )
    expected = {r["content"]: r["score"] for r in direct}
    np.testing.assert_allclose(
        scores_by_input_order(result, cands()), [expected[t] for t in TEXTS], rtol=1e-5
    )


def test_colbert_duplicates_and_order(tiny_colbert_dir, settings):
    texts = [TEXTS[0], TEXTS[1], TEXTS[0], TEXTS[5]]
    c = cands(texts)
    reranker = colbert(tiny_colbert_dir, settings)
    result = reranker.rerank(QUERY, c)
    s = {it.doc_id: it.score for it in result.items}
    assert set(s) == {"d0", "d1", "d2", "d3"}
    assert s["d0"] == pytest.approx(s["d2"], rel=1e-6)
    flipped = reranker.rerank(QUERY, list(reversed(c)))
    assert {it.doc_id: it.score for it in flipped.items} == pytest.approx(s, rel=1e-5)


def test_colbert_truncation_cuts_the_passage_end(tiny_colbert_dir, settings):
    reranker = colbert(tiny_colbert_dir, settings, max_length=16)
    result = reranker.rerank("lift", cands([LONG, LONG + " and more words past the limit", "lift"]))
    assert sorted(result.truncated_ids) == ["d0", "d1"] and reranker.effective_max_length == 16
    s = {it.doc_id: it.score for it in result.items}
    assert s["d0"] == pytest.approx(s["d1"], rel=1e-6)
    full = colbert(tiny_colbert_dir, settings).rerank(
        "lift", cands([LONG, LONG + " and more words past the limit"])
    )
    assert full.truncated_ids == []


def test_colbert_rejects_a_plain_bert_folder(tiny_cross_encoder_dir, settings):
    result = create_reranker(MethodSpec("colbert", str(tiny_cross_encoder_dir)), settings).rerank(
        QUERY, cands()
    )
    assert result.error.kind == "model-not-found" and not result.available
    assert "not a ColBERT checkpoint" in result.error.message and "artifact.metadata" in result.error.message
    assert "late-interaction" in result.error.hint


def test_map_results_by_content_keeps_duplicates_apart():
    docs = ["a", "b", "a"]
    results = [{"content": "a", "score": 3.0}, {"content": "a", "score": 2.0}, {"content": "b", "score": 1.0}]
    assert map_results(results, docs) == [3.0, 1.0, 2.0]
    indexed = [
        {"content": "a", "score": 5.0, "result_index": 2},
        {"content": "b", "score": 4.0, "result_index": 1},
    ]
    with pytest.raises(MethodFailed, match="no score for 1 of 3"):
        map_results(indexed, docs)
    with pytest.raises(MethodFailed, match="not among the candidates"):
        map_results([{"content": "z", "score": 1.0}], docs)
