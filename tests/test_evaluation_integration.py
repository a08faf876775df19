"""Evaluation across real retrievers: shared indexes, and judgements that come from the label store."""

from __future__ import annotations

import json
import shutil

import pytest

from rerank_core.cli import main as cli_main
from rerank_core.config import Settings
from rerank_core.corpus import load_beir
from rerank_core.evaluation import run_evaluation
from rerank_core.sample import SAMPLE_DIR
from tests.tiny_bi_encoder import tiny_bi_encoder_once


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):
    return tiny_bi_encoder_once(tmp_path_factory)


def test_hybrid_reuses_the_bm25_and_dense_indexes_of_the_same_run(tiny_encoder):
    settings = Settings(
        methods={"dense": {"model": str(tiny_encoder)}, "hybrid": {"dense_model": str(tiny_encoder)}}
    )
    dataset = load_beir(SAMPLE_DIR)
    report = run_evaluation(
        dataset, "bm25", 20, ["bm25", "dense", "hybrid"], max_queries=4, settings=settings
    )
    ms = report.methods
    assert all(ms[n].available for n in ("bm25", "dense", "hybrid"))
    # a fused hybrid costs exactly its parts' build time: nothing was indexed again
    assert ms["hybrid"].index_build_s == pytest.approx(ms["bm25"].index_build_s + ms["dense"].index_build_s)


def test_hybrid_first_stage_lends_its_parts(tiny_encoder, monkeypatch):
    from rerank_core.retrieval.dense import DenseRetriever

    builds = []
    original = DenseRetriever._build
    monkeypatch.setattr(
        DenseRetriever, "_build", lambda self, *a, **k: (builds.append(1), original(self, *a, **k))
    )
    settings = Settings(
        methods={"dense": {"model": str(tiny_encoder)}, "hybrid": {"dense_model": str(tiny_encoder)}}
    )
    dataset = load_beir(SAMPLE_DIR)
    report = run_evaluation(
        dataset, "hybrid", 20, ["hybrid", "bm25", "dense"], max_queries=3, settings=settings
    )
    assert all(m.available for m in report.methods.values())
    assert builds == [1]  # the corpus was encoded once, by the hybrid's dense part


def test_evaluate_against_the_label_store_needs_no_qrels_file(tmp_path):
    data = tmp_path / "sample"
    shutil.copytree(SAMPLE_DIR, data)
    qrels_file = data / "qrels" / "test.tsv"
    db = f"sqlite:///{tmp_path / 'labels.sqlite'}"
    assert cli_main(["labels", "import", "--db", db, "--corpus", "sample", str(qrels_file)]) == 0
    shutil.rmtree(data / "qrels")  # judgements now live only in the store

    out_store = tmp_path / "store.json"
    args = ["--first-stage", "bm25", "--depth", "20", "--methods", "bm25", "--max-queries", "5"]
    code = cli_main(
        [
            "evaluate",
            "--dataset",
            str(data),
            *args,
            "--qrels-db",
            db,
            "--corpus",
            "sample",
            "--output",
            str(out_store),
            "--run-dir",
            str(tmp_path / "runs-store"),
        ]
    )
    assert code == 0
    out_file = tmp_path / "file.json"
    code = cli_main(
        [
            "evaluate",
            "--dataset",
            str(SAMPLE_DIR),
            *args,
            "--output",
            str(out_file),
            "--run-dir",
            str(tmp_path / "runs-file"),
        ]
    )
    assert code == 0
    from_store = json.loads(out_store.read_text())["methods"]["bm25"]["metrics"]
    from_file = json.loads(out_file.read_text())["methods"]["bm25"]["metrics"]
    assert from_store == pytest.approx(from_file, abs=1e-12)
    assert from_file["nDCG@10"] > 0
