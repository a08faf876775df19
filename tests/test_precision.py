"""Precision paths, the auto choice, the ONNX cache, length-bucketed batches and the current
reranker architectures, all with tiny random-weight models in each library's real layout."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from rerank_core import precision
from rerank_core.batching import length_buckets
from rerank_core.config import Settings
from rerank_core.encoders import encoder_precision, load_sentence_transformer
from rerank_core.errors import BackendUnavailable, InvalidMethod
from rerank_core.registry import create_reranker
from rerank_core.types import Candidate, MethodSpec, ScoreScale

pytest_plugins = ["tiny_models"]

QUERY = "what is the lift force on a wing"
LONG = "the boundary layer on the wing becomes turbulent " * 6  # about 50 tokens
MIXED = [
    "lift is a force that acts on the wings of an aircraft in flight",
    LONG,
    "drag",
    "a shock wave forms ahead of a blunt body at hypersonic speed " * 3,
    "heat transfer to the skin of a cone",
    LONG + " and more words past the limit",
    "coffee and bread for breakfast",
    "drag",
]

NO_AMX_VNNI = frozenset({"sse4_2", "avx2", "avx512f", "avx512_vnni", "avx512_bf16"})  # bf16 but no AMX
PLAIN_AVX2 = frozenset({"sse4_2", "avx2"})
AMX = NO_AMX_VNNI | {"amx_tile", "amx_int8", "amx_bf16"}


def cands(texts=MIXED) -> list[Candidate]:
    return [
        Candidate(doc_id=f"d{i}", text=t, first_stage_rank=i + 1, first_stage_score=1.0 / (i + 1))
        for i, t in enumerate(texts)
    ]


def by_input(result, candidates) -> list[float]:
    score = {it.doc_id: it.score for it in result.items}
    return [score[c.doc_id] for c in candidates]


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


def fake_cpu(monkeypatch, flags: frozenset[str]) -> None:
    monkeypatch.setattr(precision, "cpu_flags", lambda: flags)


# -- the auto choice ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "flags, family, expected",
    [
        (AMX, precision.ENCODER, "bf16"),
        (AMX, precision.DECODER, "bf16"),
        (NO_AMX_VNNI, precision.ENCODER, "openvino-int8"),
        (NO_AMX_VNNI, precision.DECODER, "fp32"),
        (NO_AMX_VNNI, precision.TORCH_ONLY, "fp32"),
        (PLAIN_AVX2, precision.ENCODER, "fp32"),
        (frozenset(), precision.ENCODER, "fp32"),
    ],
)
def test_auto_follows_the_cpu_flags(monkeypatch, flags, family, expected):
    fake_cpu(monkeypatch, flags)
    choice = precision.choose_auto(family)
    assert choice.precision == expected and choice.reason.startswith(f"auto: {expected}")


def test_auto_never_picks_bf16_without_amx(monkeypatch, tiny_cross_encoder_dir, settings):
    """avx512_bf16 alone measured slower than fp32: a CPU without AMX-BF16 keeps a safe choice."""
    for flags in (NO_AMX_VNNI, PLAIN_AVX2, frozenset()):
        fake_cpu(monkeypatch, flags)
        for family in (precision.ENCODER, precision.DECODER, precision.TORCH_ONLY):
            assert precision.choose_auto(family).precision != "bf16"
    fake_cpu(monkeypatch, PLAIN_AVX2)
    result = create_reranker(
        MethodSpec("cross-encoder", str(tiny_cross_encoder_dir)), settings, precision="auto"
    ).rerank(QUERY, cands())
    assert result.ok and result.precision == "fp32"
    assert any(n.startswith("auto: fp32") for n in result.notes)


def test_auto_without_onnx_runtime_falls_back_to_fp32_and_says_so(monkeypatch):
    fake_cpu(monkeypatch, NO_AMX_VNNI)
    monkeypatch.setattr(precision, "onnx_runtime_available", lambda: False)
    choice = precision.choose_auto(precision.ENCODER)
    assert choice.precision == "fp32" and "missing" in choice.reason


def test_real_cpu_flags_are_read():
    flags = precision.cpu_flags()
    assert isinstance(flags, frozenset)
    support = precision.cpu_support()
    assert set(support.reported) <= set(precision.REPORTED_FLAGS)


@pytest.mark.parametrize(
    "method", ["cross-encoder", "bi-encoder", "late-interaction", "colbert", "flashrank"]
)
def test_a_bad_precision_lists_the_choices(method):
    with pytest.raises((InvalidMethod, Exception)) as info:
        create_reranker(method, precision="fp16")
    assert "fp16" in str(info.value)
    assert "auto" in (getattr(info.value, "hint", "") or "") or "auto" in str(info.value)


def test_colbert_has_no_onnx_path():
    with pytest.raises(InvalidMethod, match="precision='onnx-int8'") as info:
        create_reranker("colbert", precision="onnx-int8")
    assert "fp32, bf16, auto" in info.value.hint


# -- length buckets -----------------------------------------------------------------------------------
def test_length_buckets_sort_cap_and_cover():
    lengths = [50, 10, 400, 10, 30, 200, 60]
    batches = length_buckets(lengths, batch_size=3, batch_tokens=None)
    assert batches == [[1, 3, 4], [0, 6, 5], [2]]
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    by_tokens = length_buckets(lengths, batch_size=32, batch_tokens=200)
    for batch in by_tokens:
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 200
    assert length_buckets([], 4) == []
    assert length_buckets([900], 4, batch_tokens=100) == [[0]]  # too long for the budget: alone


@pytest.mark.parametrize("precision_name", ["fp32", "bf16"])
def test_bucketing_keeps_order_scores_and_truncation_flags(tiny_cross_encoder_dir, settings, precision_name):
    """Bucketed batches give the scores of one-pair-at-a-time scoring, in the candidates' order."""
    spec = MethodSpec("cross-encoder", str(tiny_cross_encoder_dir))
    c = cands()
    one = create_reranker(spec, settings, batch_size=1, max_length=24, precision=precision_name)
    bucketed = create_reranker(spec, settings, batch_size=3, max_length=24, precision=precision_name)
    r1, r2 = one.rerank(QUERY, c), bucketed.rerank(QUERY, c)
    tol = 1e-5 if precision_name == "fp32" else 2e-2
    np.testing.assert_allclose(by_input(r2, c), by_input(r1, c), atol=tol)
    expected_cut = {cand.doc_id for cand, n in zip(c, one.count_tokens(QUERY, MIXED), strict=True) if n > 24}
    assert expected_cut and set(r2.truncated_ids) == expected_cut == set(r1.truncated_ids)
    assert r2.precision == precision_name


def test_bucketing_matches_the_library_on_mixed_lengths(tiny_cross_encoder_dir, settings):
    import torch
    from sentence_transformers import CrossEncoder

    c = cands()
    result = create_reranker(MethodSpec("cross-encoder", str(tiny_cross_encoder_dir)), settings).rerank(
        QUERY, c
    )
    direct = CrossEncoder(str(tiny_cross_encoder_dir), device="cpu").predict(
        [(QUERY, t) for t in MIXED], activation_fn=torch.nn.Identity(), show_progress_bar=False
    )
    np.testing.assert_allclose(by_input(result, c), direct, rtol=1e-5, atol=1e-6)


# -- the ONNX paths and their cache ----------------------------------------------------------------------
def test_onnx_int8_cache_is_built_once_and_reused(tiny_cross_encoder_dir, settings, monkeypatch):
    calls: list[str] = []
    original = precision.export_onnx

    def counting(*args, **kwargs):
        calls.append(args[3])
        return original(*args, **kwargs)

    monkeypatch.setattr(precision, "export_onnx", counting)
    spec = MethodSpec("cross-encoder", str(tiny_cross_encoder_dir))
    first = create_reranker(spec, settings, precision="onnx-int8")
    r1 = first.rerank(QUERY, cands())
    assert r1.ok and r1.precision == "onnx-int8" and calls == ["onnx-int8"]
    assert any("exported and quantised now" in n for n in r1.notes)
    second = create_reranker(spec, settings, precision="onnx-int8")
    r2 = second.rerank(QUERY, cands())
    assert calls == ["onnx-int8"]  # the second load reads the cache
    assert any("from the cache" in n for n in r2.notes)
    assert r2.ids == r1.ids
    folder = next((settings.data_dir / "onnx-cache").iterdir()) / "onnx-int8"
    assert (folder / precision.COMPLETE).exists()
    assert precision.is_int8_graph(next((folder / "onnx").glob("*.onnx")))


def test_concurrent_loads_export_once(tiny_cross_encoder_dir, settings, monkeypatch):
    calls: list[str] = []
    original = precision.export_onnx
    monkeypatch.setattr(precision, "export_onnx", lambda *a, **k: (calls.append(a[3]), original(*a, **k))[1])
    spec = MethodSpec("cross-encoder", str(tiny_cross_encoder_dir))
    results: list = []
    threads = [
        threading.Thread(
            target=lambda: results.append(
                create_reranker(spec, settings, precision="onnx").rerank(QUERY, cands())
            )
        )
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["onnx"] and all(r.ok and r.precision == "onnx" for r in results)


def test_onnx_fp32_gives_the_torch_scores(tiny_cross_encoder_dir, settings):
    spec = MethodSpec("cross-encoder", str(tiny_cross_encoder_dir))
    c = cands()
    torch_scores = by_input(create_reranker(spec, settings).rerank(QUERY, c), c)
    onnx = create_reranker(spec, settings, precision="onnx").rerank(QUERY, c)
    assert onnx.precision == "onnx"
    np.testing.assert_allclose(by_input(onnx, c), torch_scores, atol=1e-4)
    int8 = create_reranker(spec, settings, precision="onnx-int8").rerank(QUERY, c)
    np.testing.assert_allclose(by_input(int8, c), torch_scores, atol=0.1)  # close, not equal


def test_the_models_own_onnx_file_is_used(tiny_cross_encoder_dir, settings, tmp_path, monkeypatch):
    import shutil

    own = tmp_path / "with-onnx"
    shutil.copytree(tiny_cross_encoder_dir, own)
    built = create_reranker(
        MethodSpec("cross-encoder", str(tiny_cross_encoder_dir)), settings, precision="onnx"
    )
    built.load()
    exported = next((settings.data_dir / "onnx-cache").iterdir()) / "onnx" / "onnx" / "model.onnx"
    (own / "onnx").mkdir(exist_ok=True)
    shutil.copy(exported, own / "onnx" / "model.onnx")
    monkeypatch.setattr(
        precision, "export_onnx", lambda *a, **k: pytest.fail("exported a model that has its own file")
    )
    result = create_reranker(MethodSpec("cross-encoder", str(own)), settings, precision="onnx").rerank(
        QUERY, cands()
    )
    assert result.ok and result.precision == "onnx"
    assert any("the model's own onnx/model.onnx" in n for n in result.notes)


def test_a_failed_export_is_an_error_not_another_precision(tmp_path, settings):
    from tiny_models import build_tiny_remote_code_cross_encoder

    path = build_tiny_remote_code_cross_encoder(tmp_path / "remote")
    result = create_reranker(
        MethodSpec("cross-encoder", str(path)), settings, precision="onnx-int8", trust_remote_code=True
    ).rerank(QUERY, cands())
    assert not result.ok and result.items == () and result.precision == ""
    assert "could not be exported to ONNX for precision onnx-int8" in result.error.message
    assert "fp32 or bf16" in result.error.hint


# -- current reranker architectures ----------------------------------------------------------------------
def _yes_no_logits(path, prompts: list[str]) -> list[float]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForCausalLM.from_pretrained(str(path)).eval()
    yes, no = tok.convert_tokens_to_ids("yes"), tok.convert_tokens_to_ids("no")
    out = []
    with torch.no_grad():
        for prompt in prompts:
            ids = torch.tensor([tok(prompt, add_special_tokens=False)["input_ids"]])
            logits = model(input_ids=ids).logits[0, -1]
            out.append(float(logits[yes] - logits[no]))
    return out


def test_causal_lm_reranker_scores_yes_minus_no_on_the_qwen3_prompt(tiny_qwen3_reranker_dir, settings):
    from rerank_core.rerankers.cross_encoder import QWEN3_INSTRUCTION, QWEN3_TEMPLATE

    texts = MIXED[:5]
    c = cands(texts)
    reranker = create_reranker(
        MethodSpec("cross-encoder", str(tiny_qwen3_reranker_dir)), settings, batch_size=2
    )
    result = reranker.rerank(QUERY, c)
    assert result.ok, result.error
    assert result.scale == ScoreScale.LOGIT and 'log-odds of "yes"' in result.label
    assert reranker.takes_instruction
    prompts = [
        QWEN3_TEMPLATE.replace("{instruction}", QWEN3_INSTRUCTION)
        .replace("{query}", QUERY)
        .replace("{document}", t)
        for t in texts
    ]
    np.testing.assert_allclose(
        by_input(result, c), _yes_no_logits(tiny_qwen3_reranker_dir, prompts), atol=1e-4
    )

    told = create_reranker(
        MethodSpec("cross-encoder", str(tiny_qwen3_reranker_dir)),
        settings,
        instruction="Find passages about aircraft structures",
    ).rerank(QUERY, c)
    assert told.ok and by_input(told, c) != pytest.approx(by_input(result, c), abs=1e-6)


def test_causal_lm_truncation_cuts_the_document_and_keeps_the_prompt_end(tiny_qwen3_reranker_dir, settings):
    reranker = create_reranker(
        MethodSpec("cross-encoder", str(tiny_qwen3_reranker_dir)), settings, max_length=160
    )
    c = cands([LONG * 6, LONG * 6 + " and more words past the limit", "lift"])
    result = reranker.rerank("lift", c)
    assert result.ok and sorted(result.truncated_ids) == ["d0", "d1"]
    s = {it.doc_id: it.score for it in result.items}
    assert s["d0"] == pytest.approx(s["d1"], abs=1e-5)  # same first tokens, same kept prompt end
    assert any("prompts were cut at 160 tokens" in n for n in result.notes)
    lengths = reranker.count_tokens("lift", [t.text for t in c])
    assert [n > 160 for n in lengths] == [True, True, False]


def test_prompt_that_leaves_no_room_for_the_document_says_so(tiny_qwen3_reranker_dir, settings):
    result = create_reranker(
        MethodSpec("cross-encoder", str(tiny_qwen3_reranker_dir)), settings, max_length=20
    ).rerank(QUERY, cands())
    assert not result.ok and "raise max_length" in result.error.hint


@pytest.mark.parametrize("fixture", ["tiny_modernbert_dir", "tiny_xlmr_dir"])
def test_encoder_architectures_give_the_library_scores(fixture, request, settings):
    import torch
    from sentence_transformers import CrossEncoder

    path = request.getfixturevalue(fixture)
    c = cands()
    reranker = create_reranker(MethodSpec("cross-encoder", str(path)), settings, batch_size=3)
    assert not reranker.takes_instruction
    result = reranker.rerank(QUERY, c)
    assert result.ok, result.error
    assert not reranker.takes_instruction
    direct = CrossEncoder(str(path), device="cpu").predict(
        [(QUERY, t) for t in MIXED], activation_fn=torch.nn.Identity(), show_progress_bar=False
    )
    np.testing.assert_allclose(by_input(result, c), direct, rtol=1e-4, atol=1e-5)
    for name in ("bf16", "onnx-int8"):
        other = create_reranker(MethodSpec("cross-encoder", str(path)), settings, precision=name).rerank(
            QUERY, c
        )
        assert other.ok and other.precision == name, other.error


def test_xlmr_tokenizer_frames_pairs_like_xlm_r(tiny_xlmr_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_xlmr_dir))
    pieces = tok.convert_ids_to_tokens(tok("lift force", "on the wing")["input_ids"])
    assert pieces == [
        "<s>",
        "\u2581lift",
        "\u2581force",
        "</s>",
        "</s>",
        "\u2581on",
        "\u2581the",
        "\u2581wing",
        "</s>",
    ]


def test_instruction_on_a_pair_model_is_refused(tiny_cross_encoder_dir, settings):
    result = create_reranker(
        MethodSpec("cross-encoder", str(tiny_cross_encoder_dir)), settings, instruction="find aircraft"
    ).rerank(QUERY, cands())
    assert result.error.kind == "invalid-method" and "takes no instruction" in result.error.message


def test_prompt_template_makes_any_model_read_a_prompt(tiny_cross_encoder_dir, settings):
    reranker = create_reranker(
        MethodSpec("cross-encoder", str(tiny_cross_encoder_dir)),
        settings,
        prompt_template="{instruction} query: {query} passage: {document}",
        instruction="rank aircraft passages",
    )
    result = reranker.rerank(QUERY, cands())
    assert result.ok and reranker.takes_instruction


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"prompt_template": "no placeholders"}, "must contain {query}"),
        ({"prompt_template": "{document} then {query}"}, "{document} last"),
        ({"prompt_template": "{query} {document}", "instruction": "x"}, "no {instruction} placeholder"),
        ({"instruction": ""}, "instruction=''"),
        ({"trust_remote_code": "yes"}, "trust_remote_code='yes'"),
        ({"batch_tokens": 0}, "batch_tokens=0"),
    ],
)
def test_new_cross_encoder_options_are_validated(options, fragment):
    with pytest.raises(InvalidMethod, match=fragment.replace("{", r"\{").replace("}", r"\}")) as info:
        create_reranker("cross-encoder", **options)
    assert info.value.hint


def test_trust_remote_code_is_opt_in_and_warned(tmp_path, settings):
    from tiny_models import build_tiny_remote_code_cross_encoder

    path = build_tiny_remote_code_cross_encoder(tmp_path / "remote")
    refused = create_reranker(MethodSpec("cross-encoder", str(path)), settings).rerank(QUERY, cands())
    assert refused.error.kind == "invalid-method" and "trust_remote_code" in refused.error.hint
    allowed = create_reranker(
        MethodSpec("cross-encoder", str(path)), settings, trust_remote_code=True
    ).rerank(QUERY, cands())
    assert allowed.ok and any("trust_remote_code is on" in n for n in allowed.notes)


# -- FlashRank --------------------------------------------------------------------------------------------
def test_flashrank_reports_the_precision_of_its_file(
    tiny_flashrank_int8_cache, tiny_flashrank_cache, settings
):
    cache_dir, name = tiny_flashrank_int8_cache
    int8 = create_reranker(MethodSpec("flashrank", name), settings, cache_dir=str(cache_dir))
    result = int8.rerank(QUERY, cands())
    assert result.ok and result.precision == "onnx-int8"
    assert precision.is_int8_graph(int8.model_dir / precision_file(name))
    refused = create_reranker(
        MethodSpec("flashrank", name), settings, cache_dir=str(cache_dir), precision="onnx"
    ).rerank(QUERY, cands())
    assert refused.error.kind == "invalid-method" and "ships an int8 file" in refused.error.message

    fp32_dir, _ = tiny_flashrank_cache
    fp32 = create_reranker(MethodSpec("flashrank", name), settings, cache_dir=str(fp32_dir)).rerank(
        QUERY, cands()
    )
    assert fp32.precision == "onnx"
    quantised = create_reranker(
        MethodSpec("flashrank", name), settings, cache_dir=str(fp32_dir), precision="onnx-int8"
    ).rerank(QUERY, cands())
    assert quantised.ok and quantised.precision == "onnx-int8"
    assert any("quantised to int8 once" in n for n in quantised.notes)
    np.testing.assert_allclose(by_input(quantised, cands()), by_input(fp32, cands()), atol=0.05)


def precision_file(name: str) -> str:
    from flashrank.Config import model_file_map

    return model_file_map[name]


# -- encoders (dense, bi-encoder, late interaction) ---------------------------------------------------------
@pytest.fixture
def tiny_bi_encoder_dir(tmp_path_factory):
    from tiny_bi_encoder import tiny_bi_encoder_once

    return tiny_bi_encoder_once(tmp_path_factory)


def test_shared_encoders_are_kept_per_precision(tiny_bi_encoder_dir, settings, monkeypatch):
    fake_cpu(monkeypatch, NO_AMX_VNNI)
    fp32 = load_sentence_transformer(str(tiny_bi_encoder_dir), settings)
    int8 = load_sentence_transformer(str(tiny_bi_encoder_dir), settings, precision="onnx-int8")
    monkeypatch.setattr(precision, "openvino_runtime_available", lambda: False)  # auto = onnx-int8
    auto = load_sentence_transformer(str(tiny_bi_encoder_dir), settings, precision="auto")
    assert fp32 is not int8 and auto is int8
    assert encoder_precision(fp32) == "fp32" and encoder_precision(int8) == "onnx-int8"
    with pytest.raises(InvalidMethod):
        load_sentence_transformer(str(tiny_bi_encoder_dir), settings, precision="int4")


@pytest.mark.parametrize("method", ["bi-encoder", "late-interaction"])
@pytest.mark.parametrize("precision_name", ["bf16", "onnx", "onnx-int8"])
def test_encoder_methods_run_at_each_precision(method, precision_name, tiny_bi_encoder_dir, settings):
    spec = MethodSpec(method, str(tiny_bi_encoder_dir))
    c = cands()
    base = create_reranker(spec, settings).rerank(QUERY, c)
    other = create_reranker(spec, settings, precision=precision_name).rerank(QUERY, c)
    assert base.precision == "fp32" and other.ok and other.precision == precision_name, other.error
    tol = 1e-3 if precision_name == "onnx" else 0.1
    np.testing.assert_allclose(by_input(other, c), by_input(base, c), atol=tol)


def test_dense_retriever_takes_a_precision(tiny_bi_encoder_dir, settings):
    from rerank_core.retrieval.dense import DenseRetriever
    from rerank_core.types import Corpus, Document

    corpus = Corpus([Document(id=f"d{i}", text=t) for i, t in enumerate(MIXED)])
    dense = DenseRetriever(settings=settings, model=str(tiny_bi_encoder_dir), precision="onnx-int8").build(
        corpus
    )
    assert dense.precision == "onnx-int8" and len(dense.search(QUERY, 3)) == 3
    from rerank_core.errors import ConfigError

    with pytest.raises((InvalidMethod, ConfigError)):
        DenseRetriever(settings=settings, precision="half")


def test_missing_onnx_runtime_is_reported(tiny_bi_encoder_dir, settings, monkeypatch):
    monkeypatch.setattr(precision, "onnx_runtime_available", lambda: False)
    with pytest.raises(BackendUnavailable, match="needs ONNX Runtime and Optimum"):
        load_sentence_transformer(str(tiny_bi_encoder_dir), settings, precision="onnx", shared=False)


# -- ColBERT ------------------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")
def test_colbert_bf16_runs_and_says_so(tiny_colbert_dir, settings):
    c = cands()
    fp32 = create_reranker(MethodSpec("colbert", str(tiny_colbert_dir)), settings).rerank(QUERY, c)
    bf16 = create_reranker(MethodSpec("colbert", str(tiny_colbert_dir)), settings, precision="bf16").rerank(
        QUERY, c
    )
    assert fp32.precision == "fp32" and bf16.ok and bf16.precision == "bf16"
    np.testing.assert_allclose(by_input(bf16, c), by_input(fp32, c), rtol=0.05)
