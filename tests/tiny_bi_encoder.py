"""A tiny random-weight sentence-transformers bi-encoder in the library's real on-disk layout.

Two BERT layers of width 32 with seeded random weights, the WordPiece tokenizer of
``tests/tiny_models.py`` (one token per listed word), mean pooling and normalisation, saved with
``SentenceTransformer.save`` so it loads from a local path exactly as a downloaded model does.
It exercises the real loading and encoding code fast; its scores mean nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tiny_models import TINY, TINY_INIT_STD, _bert_config, _build_once, _seed, write_tokenizer

TINY_MAX_LENGTH = 64


def build_tiny_bi_encoder(directory: str | Path, *, max_length: int = TINY_MAX_LENGTH, seed: int = 0) -> Path:
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertModel

    directory = Path(directory)
    bert_dir = directory / "bert"
    n_vocab = write_tokenizer(bert_dir, model_max_length=max_length)
    _seed(seed)
    config = _bert_config(n_vocab, TINY, max_position=max_length, init_std=TINY_INIT_STD)
    BertModel(config).eval().save_pretrained(str(bert_dir))
    transformer = models.Transformer(str(bert_dir), max_seq_length=max_length)
    pooling = models.Pooling(TINY["hidden"], pooling_mode="mean")
    model = SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device="cpu")
    out = directory / "tiny-bi-encoder"
    model.save(str(out))
    return out


def tiny_bi_encoder_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model folder (max length 64 tokens), built once per test session for every module."""
    return _build_once(tmp_path_factory, "bi-encoder", build_tiny_bi_encoder)
