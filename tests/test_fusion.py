"""Fusion as a method (``fusion:A+B+...``): the formulas, the options, the core path (Compare's runtime and
``evaluate``), fitted weights with held-out figures only, saved fusions, and the issue's check on Cranfield:
the fusion's run equals reciprocal rank fusion (k = 60) of the three written run files, recomputed here.

Plumbing tests use deterministic rerankers registered for these tests only (their numbers mean nothing).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from rerank_core.cli import main as cli_main
from rerank_core.config import Settings
from rerank_core.errors import ConfigError, InvalidMethod
from rerank_core.evaluation import run_evaluation
from rerank_core.fusion import (
    FusionConfig,
    config_from_options,
    fit_fusion,
    fitted_names,
    fold_of,
    fuse_scores,
    fusion_config,
    load_fitted,
    save_fitted,
    weight_grid,
)
from rerank_core.metrics import rank_documents
from rerank_core.pipeline import Runtime
from rerank_core.registry import RERANKERS, method_info, method_key
from rerank_core.rerankers.base import Reranker
from rerank_core.trec import read_run
from rerank_core.types import Corpus, Dataset, Document, RankedItem, RerankResult, ScoreScale


class LengthReranker(Reranker):
    """Longer text first (plumbing only); counts its calls."""

    name = "test-length"
    scale = ScoreScale.LOGIT
    calls = 0

    def score(self, query, candidates):
        type(self).calls += 1
        return [float(len(c.text)) for c in candidates]


class ShortReranker(Reranker):
    """Shorter text first, ties by the id's last digit (plumbing only)."""

    name = "test-short"
    scale = ScoreScale.LOGIT

    def score(self, query, candidates):
        return [-float(len(c.text)) + int(c.doc_id[-1]) / 100 for c in candidates]


@pytest.fixture(autouse=True)
def fakes(monkeypatch):
    for cls in (LengthReranker, ShortReranker):
        monkeypatch.setitem(RERANKERS, cls.name, cls)
    LengthReranker.calls = 0


def _result(ids_scores: list[tuple[str, float]], name: str = "m") -> RerankResult:
    return RerankResult(
        method=name,
        scale=ScoreScale.LOGIT,
        items=tuple(RankedItem(d, r, s, r) for r, (d, s) in enumerate(ids_scores, start=1)),
    )


# -- the formulas -----------------------------------------------------------------------------------


def test_rrf_is_the_sum_of_weighted_reciprocal_ranks_and_ties_keep_the_first_stage_order():
    cands = ["a", "b", "c", "d"]
    one = _result([("a", 4), ("b", 3), ("c", 2), ("d", 1)])
    two = _result([("b", 9), ("a", 8), ("d", 7)])  # 'c' unranked: adds nothing
    config = FusionConfig(components=("x", "y"))
    got = dict(fuse_scores(config, [one, two], cands))
    assert got["a"] == got["b"] == pytest.approx(1 / 61 + 1 / 62)
    assert got["c"] == 1 / 63 and got["d"] == pytest.approx(1 / 64 + 1 / 63)
    assert [d for d, _ in fuse_scores(config, [one, two], cands)] == [
        "a",
        "b",
        "d",
        "c",
    ]  # a/b tie: first stage
    weighted = dict(fuse_scores(FusionConfig(components=("x", "y"), k=10), [one, two], cands, (2.0, 0.5)))
    assert weighted["b"] == pytest.approx(2 / 12 + 0.5 / 11) and weighted["c"] == pytest.approx(2 / 13)


def test_weighted_fusion_normalises_each_component_per_query():
    cands = ["a", "b", "c"]
    one = _result([("a", 10.0), ("b", 5.0), ("c", 0.0)])
    two = _result([("c", 3.0), ("a", 1.0)])  # 'b' unranked: that component's lowest normalised score
    minmax = FusionConfig(components=("x", "y"), mode="weighted", weights=(1.0, 3.0))
    got = dict(fuse_scores(minmax, [one, two], cands))
    assert got == pytest.approx({"a": 1.0 + 0.0, "b": 0.5 + 0.0, "c": 0.0 + 3.0})
    z = FusionConfig(components=("x", "y"), mode="weighted", normalize="z")
    zs = (np.array([10.0, 5.0, 0.0]) - 5.0) / np.array([10.0, 5.0, 0.0]).std()
    got = dict(fuse_scores(z, [one, two], cands))
    assert got == pytest.approx({"a": zs[0] - 1.0, "b": zs[1] - 1.0, "c": zs[2] + 1.0})
    flat = _result([("a", 2.0), ("b", 2.0), ("c", 2.0)])  # all equal: adds nothing
    assert dict(fuse_scores(minmax, [one, flat], cands)) == pytest.approx({"a": 1.0, "b": 0.5, "c": 0.0})


def test_options_and_specs_are_checked_with_the_setting_named():
    assert config_from_options(["bm25", "test-length"], {}).k == 60
    config = config_from_options(["bm25", "test-length"], {"mode": "weighted", "weights": {"bm25": 0.25}})
    assert config.weights == (0.25, 1.0) and config.scale == ScoreScale.FUSED
    cases = [
        ({"mode": "borda"}, "mode = 'borda'"),
        ({"k": -1}, "k = -1"),
        ({"normalize": "l2"}, "normalize = 'l2'"),
        ({"weights": {"dense": 1}}, "weights name 'dense'"),
        ({"weights": [0, 0]}, "all zero"),
        ({"depth": 0.5}, "depth"),
        ({"window": 3}, "unknown option"),
    ]
    for options, message in cases:
        with pytest.raises(ConfigError, match=message) as info:
            config_from_options(["bm25", "test-length"], options)
        assert "[methods.fusion]" in info.value.message
    for spec, message in [
        ("fusion:bm25", "no fitted fusion 'bm25'"),
        ("fusion:bm25+bm25", "listed twice"),
        ("fusion:bm25+nope", "not a known method"),
        ("fusion:bm25+fusion:x", "cannot fuse another fusion"),
        ("fusion", "needs the methods to fuse"),
    ]:
        with pytest.raises(InvalidMethod, match=message):
            fusion_config(spec, Settings())
    info = method_info("fusion:bm25+test-length")
    assert info.title == "Fusion" and not info.is_first_stage
    with pytest.raises(InvalidMethod, match="hybrid:A\\+B"):
        run_evaluation(_toy(), "fusion:bm25+dense", 5, ["test-length"])


def test_the_cache_key_follows_the_components_and_the_options(tmp_path):
    plain = Settings(data_dir=tmp_path)
    tuned = Settings(data_dir=tmp_path, methods={"fusion": {"k": 10}})
    bm25_tuned = Settings(data_dir=tmp_path, methods={"bm25": {"k1": 0.9}})
    spec = "fusion:bm25+test-length"
    keys = {method_key(spec, s) for s in (plain, tuned, bm25_tuned)}
    assert len(keys) == 3


# -- the core path -----------------------------------------------------------------------------------

DOCS = [
    Document("d1", "the cat sat on the mat and purred", title="cats"),
    Document("d2", "stock markets fell sharply on monday"),
    Document("d3", "a river flows through the old town"),
    Document("d4", "the cat chased a mouse along the river bank"),
    Document("d5", "bond markets and stock prices in the old town"),
]


def test_compare_fuses_components_on_the_same_candidates_once_each(tmp_path):
    corpus = Corpus(DOCS, name="five")
    settings = Settings(data_dir=tmp_path)
    runtime = Runtime()
    spec = "fusion:bm25+test-length+test-short"
    run = runtime.compare("cat river town", corpus, "bm25", ["test-length", spec], 5, settings)
    cmp = run.comparison
    fused, length = cmp.results[1], cmp.results[0]
    assert [r.method for r in cmp.results] == ["test-length", spec]
    assert run.fresh == ["bm25", "test-length", spec]
    assert LengthReranker.calls == 1  # listed: computed once, reused by the fusion
    assert sorted(fused.ids) == sorted(c.doc_id for c in cmp.candidates)
    short = runtime.memoised("cat river town", corpus, "bm25", 5, "test-short", settings)
    assert short is not None  # computed for the fusion although not listed (memoised, not shown)
    orders = [[c.doc_id for c in cmp.candidates], length.ids, short.ids]
    expected = {d: math.fsum(1 / (60 + o.index(d) + 1) for o in orders) for d in orders[0]}
    assert [it.score for it in fused.items] == [expected[d] for d in fused.ids]
    assert fused.ids == sorted(orders[0], key=lambda d: (-expected[d], orders[0].index(d)))
    assert fused.label == "RRF (k=60) of bm25, test-length, test-short" and fused.scale == ScoreScale.RRF
    assert any("query time" in n for n in fused.notes)
    again = runtime.compare("cat river town", corpus, "bm25", [spec], 5, settings)
    assert again.fresh == [] and again.comparison.results[0] is fused
    # a fusion whose component fails: that fusion's error, the rest go on
    bad = runtime.compare(
        "cat", corpus, "bm25", ["test-length", "fusion:bm25+flashrank:nowhere"], 5, settings
    )
    assert bad.comparison.results[0].ok and not bad.comparison.results[1].ok
    assert "fusion component flashrank:nowhere failed" in bad.comparison.results[1].error.message


def _toy() -> Dataset:
    words = "wing lift drag flow shock heat boundary layer mach plate cone pressure".split()
    docs = [
        Document(
            f"d{i:02d}", " ".join(words[(i * 7 + j * 3) % 12] for j in range(2 + i % 5)) + " x" * (i % 4)
        )
        for i in range(40)
    ]
    queries = {f"q{j}": f"{words[j % 12]} {words[(j * 5 + 1) % 12]}" for j in range(12)}
    qrels = {f"q{j}": {f"d{(j * 3 + t) % 40:02d}": t % 4 for t in range(8)} for j in range(12)}
    return Dataset(name="toy", corpus=Corpus(docs, name="toy"), queries=queries, qrels=qrels)


def _rrf_of_run_files(paths: list[Path], qid: str, k: float = 60) -> list[tuple[str, float]]:
    """RRF (k) of the TREC orders of run files; ties by the first file's order (the first stage's)."""
    orders = [rank_documents(read_run(p)[qid]) for p in paths]
    fused = {d: math.fsum(1 / (k + o.index(d) + 1) for o in orders if d in o) for d in orders[0]}
    return sorted(((d, s) for d, s in fused.items()), key=lambda t: (-t[1], orders[0].index(t[0])))


def test_evaluate_writes_the_rrf_of_the_written_run_files(tmp_path):
    dataset = _toy()
    spec = "fusion:bm25+test-length+test-short"
    report = run_evaluation(dataset, "bm25", 15, ["bm25", "test-length", "test-short", spec])
    written = report.write_runs(tmp_path)
    fused = read_run(written[spec])
    for qid in report.query_ids:
        expected = _rrf_of_run_files([written[m] for m in ("bm25", "test-length", "test-short")], qid)
        assert rank_documents(fused[qid]) == [d for d, _ in expected]
        assert [fused[qid][d] for d, _ in expected] == pytest.approx([s for _, s in expected], rel=1e-6)
    data = report.to_json()["methods"][spec]
    assert data["available"] and data["kind"] == "reranker" and data["label"].startswith("RRF (k=60)")
    # a fusion of components that are not listed: computed on the same candidates, not reported
    alone = run_evaluation(dataset, "bm25", 15, [spec])
    assert list(alone.methods) == [spec] and alone.methods[spec].run == report.methods[spec].run


def test_a_fusion_with_another_first_stage_ranks_the_candidates_by_its_own_list(tmp_path):
    dataset = _toy()
    run_file = tmp_path / "other.run"  # another first stage: a run listing part of the candidates
    lines = []
    for qid in dataset.queries:
        lines += [f"{qid} Q0 d{(int(qid[1:]) * 3 + t) % 40:02d} {t + 1} {10 - t} r" for t in range(3)]
    run_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    spec = f"fusion:bm25+run:{run_file}"
    report = run_evaluation(dataset, "bm25", 15, ["bm25", spec])
    assert report.methods[spec].available, report.methods[spec].error
    for qid in report.query_ids:
        bm25 = rank_documents(report.methods["bm25"].run[qid])
        other = [d for d in rank_documents(read_run(run_file)[qid]) if d in bm25]
        fused = {d: 1 / (61 + bm25.index(d)) + (1 / (61 + other.index(d)) if d in other else 0) for d in bm25}
        expected = sorted(bm25, key=lambda d: (-fused[d], bm25.index(d)))
        assert rank_documents(report.methods[spec].run[qid]) == expected


# -- fitted weights --------------------------------------------------------------------------------


def test_weight_grid_and_folds():
    grid = weight_grid(3)
    assert len(grid) == 66 and np.allclose(grid.sum(axis=1), 1.0) and (grid >= 0).all()
    assert len(weight_grid(5)) == 126 and len(weight_grid(2, 0.5)) == 3
    folds = fold_of([f"q{i}" for i in range(23)], 5)
    sizes = sorted(list(folds.values()).count(f) for f in range(5))
    assert sizes == [4, 4, 5, 5, 5] and fold_of([f"q{i}" for i in range(23)], 5) == folds


def test_fitting_reports_held_out_figures_and_the_saved_fusion_keeps_them_held_out(tmp_path):
    dataset = _toy()
    settings = Settings(data_dir=tmp_path / "data")
    fit = fit_fusion(
        dataset, "bm25", 15, ["bm25", "test-length"], name="mine", folds=4, settings=settings, mode="weighted"
    )
    summary = fit.summary()
    assert (
        summary["queries"] == 12
        and summary["folds"] == 4
        and set(summary["components"])
        == {
            "bm25",
            "test-length",
        }
    )
    config = fit.config
    assert len(config.fold_weights) == 4 and all(sum(w) == pytest.approx(1.0) for w in config.fold_weights)
    assert set(config.query_folds) == set(dataset.qrels) and config.corpus == dataset.corpus.fingerprint
    path = save_fitted(fit, settings)
    assert path.name == "mine.json" and fitted_names(settings) == ["mine"]
    loaded = load_fitted("mine", settings)
    assert loaded.fold_weights == config.fold_weights and loaded.weights == config.weights
    # evaluated again on the queries it was fitted on, each query gets the weights fitted without it:
    # the evaluation's figures are exactly the held-out ones
    report = run_evaluation(dataset, "bm25", 15, ["fusion:mine"], settings=settings)
    entry = report.methods["fusion:mine"]
    assert entry.per_query["nDCG@10"] == pytest.approx(fit.held_out, abs=1e-12)
    assert "12 of 12 queries were among those it was fitted on" in entry.warnings[0]
    assert report.to_json()["methods"]["fusion:mine"]["warnings"] == entry.warnings
    # fold 0's weights are the best on the OTHER folds: recompute that choice by brute force
    from rerank_core.fusion import fuse_results
    from rerank_core.metrics import evaluate
    from rerank_core.trec import results_to_run

    on_all = run_evaluation(dataset, "bm25", 15, ["bm25", "test-length"], settings=settings)
    train = [q for q, f in config.query_folds.items() if f != 0]
    plain = FusionConfig(components=("bm25", "test-length"), mode="weighted")

    def mean_on_train(weights: tuple[float, ...]) -> float:
        fused = {
            q: fuse_results(
                "f",
                FusionConfig(components=plain.components, mode="weighted", weights=weights),
                on_all.first_stage_eval.results[q],
                {
                    "bm25": on_all.first_stage_eval.results[q],
                    "test-length": on_all.methods["test-length"].results[q],
                },
            )
            for q in train
        }
        values = evaluate(results_to_run(fused), {q: dataset.qrels[q] for q in train}, ["nDCG@10"])["nDCG@10"]
        return float(np.mean([values[q] for q in train]))

    best = max(mean_on_train(tuple(w)) for w in weight_grid(2))
    assert mean_on_train(config.fold_weights[0]) == pytest.approx(best, abs=1e-12)
    # used by name through the CLI too, and listed
    with pytest.raises(InvalidMethod, match="no fitted fusion 'other'"):
        fusion_config("fusion:other", settings)
    with pytest.raises(ConfigError, match="too few for 20 folds"):
        fit_fusion(dataset, "bm25", 15, ["bm25", "test-length"], name="x", folds=20, settings=settings)
    with pytest.raises(ConfigError, match="not a usable fusion name"):
        fit_fusion(dataset, "bm25", 15, ["bm25", "test-length"], name="a b", settings=settings)


def test_the_fit_prefers_the_component_that_ranks_the_judged_documents_first(tmp_path):
    """A component whose order puts every judged-relevant candidate first gets the weight."""
    qrels = {f"q{i}": {f"d{i}-{j}": 2 for j in range(3)} for i in range(10)}
    first, good, bad = {}, {}, {}
    for i in range(10):
        cands = [f"d{i}-{j}" for j in range(10)][::-1]  # the relevant ones last in the first stage
        first[f"q{i}"] = _result([(d, 10 - n) for n, d in enumerate(cands)], "fs")
        good[f"q{i}"] = _result([(d, 10 - n) for n, d in enumerate(cands[::-1])], "good")
        bad[f"q{i}"] = _result([(d, 10 - n) for n, d in enumerate(cands)], "bad")
    from rerank_core.fusion import fit_weights

    config = FusionConfig(components=("bad", "good"), mode="weighted")
    fit = fit_weights(config, first, {"bad": bad, "good": good}, qrels, name="g", corpus="c", folds=5)
    # every weight with good > bad gives good's order here; ties go to the weights closest to equal
    assert fit.config.weights == (0.4, 0.6) and all(w == (0.4, 0.6) for w in fit.config.fold_weights)
    assert fit.summary()["held_out"] == pytest.approx(1.0) and fit.summary()["components"]["bad"] < 0.5


def test_cli_fits_lists_and_uses_a_fusion_by_name(tmp_path, capsys, monkeypatch):
    from test_evaluate import write_beir

    folder = write_beir(tmp_path / "toy", _toy())
    monkeypatch.setenv("RERANK_DATA_DIR", str(tmp_path / "data"))
    code = cli_main(
        [
            "fusion",
            "fit",
            "--dataset",
            str(folder),
            "--first-stage",
            "bm25",
            "--depth",
            "15",
            "--components",
            "bm25,test-length",
            "--name",
            "cli-fit",
            "--folds",
            "3",
            "--no-progress",
            "--output",
            str(tmp_path / "fit.json"),
        ]  # fmt: skip
    )
    err = capsys.readouterr().err
    assert code == 0, err
    assert "nDCG@10 on held-out folds only" in err and "fusion:cli-fit" in err and "bm25 alone" in err
    fit = json.loads((tmp_path / "fit.json").read_text())
    assert fit["fitted_on"]["folds"] == 3 and len(fit["fitted_on"]["held_out_per_query"]) == 12
    assert cli_main(["fusion", "list"]) == 0 and "fusion:cli-fit" in capsys.readouterr().err
    out = tmp_path / "r.json"
    code = cli_main(
        [
            "evaluate",
            "--dataset",
            str(folder),
            "--first-stage",
            "bm25",
            "--depth",
            "15",
            "--methods",
            "bm25,fusion:cli-fit",
            "--output",
            str(out),
            "--run-dir",
            str(tmp_path / "runs"),
            "--no-progress",
        ]  # fmt: skip
    )
    assert code == 0
    report = json.loads(out.read_text())
    assert report["methods"]["fusion:cli-fit"]["metrics"]["nDCG@10"] == pytest.approx(
        fit["fitted_on"]["held_out"], abs=1e-12
    )


# -- the check on Cranfield ---------------------------------------------------------------


@pytest.mark.slow
def test_cranfield_fusion_run_equals_rrf_of_the_three_written_run_files(
    cranfield_dir, minilm_path, cranfield_cache, tmp_path, capsys
):
    spec = "fusion:bm25+bi-encoder+late-interaction"
    out, runs = tmp_path / "report.json", tmp_path / "runs"
    args = ["evaluate", "--dataset", str(cranfield_dir), "--first-stage", "bm25", "--depth", "100",
            "--methods", f"bm25,bi-encoder,late-interaction,{spec}", "--output", str(out), "--run-dir", str(runs),
            "--no-progress"]  # fmt: skip
    assert cli_main(args) == 0, capsys.readouterr().err
    report = json.loads(out.read_text())
    assert report["queries"] == 225 and all(m["available"] for m in report["methods"].values())
    fused = read_run(runs / "fusion__bm25_bi-encoder_late-interaction.run")
    parts = [runs / "bm25.run", runs / "bi-encoder.run", runs / "late-interaction.run"]
    assert set(fused) == set(read_run(parts[0]))
    for qid in fused:
        expected = _rrf_of_run_files(parts, qid, k=60)
        assert rank_documents(fused[qid]) == [d for d, _ in expected], qid
        assert [fused[qid][d] for d, _ in expected] == pytest.approx([s for _, s in expected], rel=1e-6)
    print(
        "Cranfield nDCG@10, bm25 top 100: "
        + ", ".join(f"{n} {m['metrics']['nDCG@10']:.4f}" for n, m in report["methods"].items())
    )


def test_the_documented_fusion_settings_are_accepted():
    import re
    import tomllib

    root = Path(__file__).resolve().parents[1]
    example = tomllib.loads((root / "rerank.example.toml").read_text(encoding="utf-8"))["methods"]["fusion"]
    readme = (root / "README.md").read_text(encoding="utf-8")
    blocks = [tomllib.loads(b) for b in re.findall(r"```toml\n(.*?)```", readme, re.S)]
    documented = next(b["methods"]["fusion"] for b in blocks if "fusion" in b.get("methods", {}))
    for options in (example, documented):
        assert config_from_options(["bm25", "test-length"], options).k == 60
