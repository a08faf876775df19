"""The one core path: resolve a first stage, retrieve once, then load → prepare → rerank.

Every page, the ``evaluate`` command, the benchmark page and ``scripts/benchmark.py`` go through a
:class:`Runtime`:

- :meth:`Runtime.first_stage` gives a ready first stage for a corpus: from memory, from its saved
  index under ``<data_dir>/indexes/<corpus fingerprint>/`` (a damaged or stale index is rebuilt),
  or built with progress and saved. ``hybrid`` is fused from the ``bm25`` and ``dense`` parts the
  runtime already holds, so nothing is indexed twice. Engines that need no local index are bound to
  the corpus only.
- :meth:`Runtime.reranker` gives the process-wide reranker for a method (keyed by
  :func:`rerank_core.registry.method_key`: model, options, the settings it reads, hashes of its
  secrets), and :meth:`Runtime.ready` loads it (timed) and runs its per-corpus preparation (timed).
- :meth:`Runtime.compare` runs one query: the first stage's candidates once, then each method on
  the SAME candidates, one after another, reporting progress before each step and handing each
  result to ``on_result`` as it is ready. Results are memoised per (corpus, query, first stage,
  depth, method), so asking again redraws without running a model, and only fresh results go to the
  shadow log.
- :meth:`Runtime.build` precomputes what the chosen methods need for a corpus (indexes, embeddings,
  token stores) and :meth:`Runtime.status` says what is ready, in memory or on disk.

Two callers asking for the same object at once get one build: each object is created under its own
lock, and the vector caches below them lock across processes too. A failed build is not kept (the
next call tries again). ``progress(done, total, message)`` may raise
:class:`~rerank_core.progress.Cancelled`, which stops the work and propagates.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from rerank_core.compare import Comparison
from rerank_core.config import Settings
from rerank_core.errors import ConfigError, RerankError
from rerank_core.fileio import folder_lock
from rerank_core.progress import Cancelled, ProgressFn, report
from rerank_core.registry import (
    create_reranker,
    create_retriever,
    is_fusion,
    method_info,
    method_key,
    retriever_class,
)
from rerank_core.rerankers.base import Reranker
from rerank_core.retrieval.base import Retriever
from rerank_core.types import Candidate, Corpus, MethodError, MethodSpec, RerankResult

T = TypeVar("T")

INDEX_DIR = "indexes"
#: per-corpus preparation runs on a compare query only up to this many indexed units; beyond it,
#: candidates are encoded as they first appear (the Corpus page's Build precomputes everything)
PREPARE_LIMIT = 3000
MAX_MEMO = 512


class _Cell(Generic[T]):
    """A value made once, under a lock, by the first caller; a failed attempt stores nothing."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.value: T | None = None
        self.ready = False

    def get(self, make: Callable[[], T]) -> T:
        if self.ready:
            return self.value  # type: ignore[return-value]
        with self.lock:
            if not self.ready:
                self.value = make()
                self.ready = True
        return self.value  # type: ignore[return-value]


class ShadowSink(Protocol):
    """Where fresh results are recorded: ``JudgementStore.log_results`` (corpus id, query text, the
    results, and keywords ``first_stage`` and ``depth``)."""

    def log_results(
        self, corpus_id: str, query_text: str, results: Sequence[RerankResult], **where: Any
    ) -> int: ...


@dataclass(frozen=True)
class Ready:
    """A reranker that is loaded and prepared for a corpus, with what that cost (None: done earlier)."""

    reranker: Reranker
    load_s: float
    prepare_s: float | None


@dataclass
class Run:
    """What :meth:`Runtime.compare` did: the comparison, which results were computed now (the rest came
    from the memo), and problems met on the way that did not stop it (a shadow log that could not be
    written)."""

    comparison: Comparison
    fresh: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Status:
    """Whether a method's precomputation for a corpus is done: ``state`` is ``ready`` (in memory),
    ``saved`` (on disk, loads in seconds), ``missing`` (must be built) or ``none`` (nothing to build)."""

    method: str
    state: str
    detail: str = ""

    @property
    def done(self) -> bool:
        return self.state in ("ready", "saved", "none")


def index_dir(settings: Settings, corpus: Corpus, key: str) -> Path:
    """Where a first stage's index over ``corpus`` is saved (keyed by the corpus content and the method key)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_.@" else "_" for ch in key)
    return Path(settings.data_dir) / INDEX_DIR / corpus.fingerprint / safe


def delete_indexes(settings: Settings, corpus: Corpus) -> None:
    """Remove every saved index of a corpus (when the corpus is deleted)."""
    shutil.rmtree(Path(settings.data_dir) / INDEX_DIR / corpus.fingerprint, ignore_errors=True)


class Runtime:
    """Process-wide first stages, rerankers and results. One per server process (the app keeps it in
    ``st.cache_resource``); the command line makes its own."""

    def __init__(self, max_memo: int = MAX_MEMO) -> None:
        self._cells: dict[tuple[str, ...], _Cell[Any]] = {}
        self._lock = threading.Lock()
        self._memo: OrderedDict[tuple[str, ...], Any] = OrderedDict()
        self._memo_lock = threading.Lock()
        self.max_memo = max_memo

    def _cell(self, *key: str) -> _Cell[Any]:
        with self._lock:
            cell = self._cells.get(key)
            if cell is None:
                cell = self._cells[key] = _Cell()
            return cell

    def _peek(self, *key: str) -> Any | None:
        cell = self._cells.get(key)
        return cell.value if cell is not None and cell.ready else None

    # -- first stages -------------------------------------------------------------------------------
    def first_stage(
        self, spec: str, corpus: Corpus, settings: Settings, progress: ProgressFn | None = None
    ) -> Retriever:
        """The first stage ``spec`` ready over ``corpus``: in memory, loaded from its saved index, or built."""
        key = method_key(spec, settings)
        return self._cell("first-stage", corpus.fingerprint, key).get(
            lambda: self._make_first_stage(spec, key, corpus, settings, progress)
        )

    def first_stage_ready(self, spec: str, corpus: Corpus, settings: Settings) -> Retriever | None:
        """The first stage if it is already in memory (no work), else None."""
        return self._peek("first-stage", corpus.fingerprint, method_key(spec, settings))

    def _make_first_stage(
        self, spec: str, key: str, corpus: Corpus, settings: Settings, progress: ProgressFn | None
    ) -> Retriever:
        parsed = MethodSpec.parse(spec)
        cls = retriever_class(parsed.name)
        if parsed.name == "hybrid" and fused_parts(parsed.model):
            return self._fused_first_stage(parsed, corpus, settings, progress)
        if parsed.name == "hybrid":
            return self._hybrid_from_parts(parsed, corpus, settings, progress)
        if not cls.needs_index:
            return create_retriever(spec, settings).build(corpus, progress)
        directory = index_dir(settings, corpus, key)
        loaded = self._load_saved(cls, directory, corpus, settings)
        if loaded is not None:
            return loaded
        try:
            directory.parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            pass  # an unwritable data directory: built in memory below, and said so
        # another process building the same index: wait for it, then load what it saved
        with folder_lock(directory.parent) if directory.parent.is_dir() else contextlib.nullcontext():
            loaded = self._load_saved(cls, directory, corpus, settings)
            if loaded is not None:
                return loaded
            retriever = create_retriever(spec, settings).build(corpus, progress)
            self._save(retriever, directory)
        return retriever

    @staticmethod
    def _load_saved(
        cls: type[Retriever], directory: Path, corpus: Corpus, settings: Settings
    ) -> Retriever | None:
        """The index saved in ``directory``, or None (a damaged or stale one is removed, to be rebuilt)."""
        if not (directory / "meta.json").is_file():
            return None
        t0 = time.perf_counter()
        try:
            loaded = cls.load(directory, corpus, settings)
        except Cancelled:
            raise
        except Exception:  # noqa: BLE001 - a damaged or stale index is rebuilt
            shutil.rmtree(directory, ignore_errors=True)
            return None
        loaded.build_s = time.perf_counter() - t0
        loaded.loaded_from = str(directory)  # type: ignore[attr-defined]
        return loaded

    @staticmethod
    def _save(retriever: Retriever, directory: Path) -> None:
        """Save into a new folder, then rename it into place: a reader never sees half an index."""
        tmp = directory.with_name(f".{directory.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            retriever.save(tmp)
            if directory.exists():  # saved meanwhile by a process that did not take the lock
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                os.replace(tmp, directory)
        except Exception as exc:  # noqa: BLE001 - an unsaved index still works for this process
            retriever.save_problem = (  # type: ignore[attr-defined]
                f"the index could not be saved in {directory.parent} ({exc}); it is kept in memory until the "
                "server restarts. Set RERANK_DATA_DIR to a writable folder with free space to keep it."
            )
            shutil.rmtree(tmp, ignore_errors=True)

    def _hybrid_from_parts(
        self, parsed: MethodSpec, corpus: Corpus, settings: Settings, progress: ProgressFn | None
    ) -> Retriever:
        from rerank_core.retrieval.hybrid import HybridRetriever

        (bm25_spec, bm25_settings), (dense_spec, dense_settings), own = hybrid_parts(parsed, settings)
        bm25 = self.first_stage(bm25_spec, corpus, bm25_settings, progress)
        dense = self.first_stage(dense_spec, corpus, dense_settings, progress)
        return HybridRetriever.from_parts(bm25, dense, settings, **own)  # type: ignore[arg-type]

    def _fused_first_stage(
        self, parsed: MethodSpec, corpus: Corpus, settings: Settings, progress: ProgressFn | None
    ) -> Retriever:
        """``hybrid:A+B``: RRF of first stages this runtime holds (each resolved, saved or built once)."""
        from rerank_core.retrieval.hybrid import FusedRetriever

        names = fused_parts(parsed.model)
        for name in names:
            if MethodSpec.parse(name).name == "hybrid":
                raise ConfigError(
                    f"hybrid:{parsed.model} fuses another hybrid ({name}).",
                    hint="list the first stages themselves, e.g. hybrid:bm25+dense+pgvector",
                )
        parts = [self.first_stage(name, corpus, settings, progress) for name in names]
        return FusedRetriever(parts, names, settings)

    # -- rerankers ----------------------------------------------------------------------------------
    def reranker(self, spec: str, settings: Settings) -> Reranker:
        """The process-wide reranker for ``spec`` under ``settings`` (created, not loaded)."""
        key = method_key(spec, settings)
        return self._cell("reranker", key).get(lambda: create_reranker(spec, settings))

    def ready(self, reranker: Reranker, corpus: Corpus | None, progress: ProgressFn | None = None) -> Ready:
        """Load ``reranker`` (timed) and prepare it for ``corpus`` (timed; once per process and corpus,
        and cheap after a restart because its encodings are on disk). Raises what loading raises."""
        load_s = reranker.load()
        prepare_s: float | None = None
        if corpus is not None and method_info(reranker.name).prepares:
            cell = self._cell("prepared", reranker.method_name, str(id(reranker)), corpus.fingerprint)
            if not cell.ready:
                t0 = time.perf_counter()

                def prepare() -> bool:
                    reranker.prepare(corpus, progress)
                    return True

                cell.get(prepare)
                prepare_s = time.perf_counter() - t0
        return Ready(reranker, load_s, prepare_s)

    # -- one query ------------------------------------------------------------------------------------
    def candidates(
        self,
        query: str,
        retriever: Retriever,
        depth: int,
        memo_key: str | None = None,
        query_id: str | None = None,
    ) -> tuple[tuple[Candidate, ...], RerankResult, bool]:
        """The first stage's top ``depth`` for ``query`` (``query_id``: its id in the dataset, which a
        run file needs); True when computed now. With ``memo_key`` (see :func:`candidates_key`) the
        candidates are memoised."""
        if memo_key is None:
            cands, result = retriever.candidates(query, depth, query_id)
            return tuple(cands), result, True
        key = ("candidates", memo_key)
        with self._memo_lock:
            hit = self._memo.get(key)
            if hit is not None:
                self._memo.move_to_end(key)
                return hit[0], hit[1], False
        cands, result = retriever.candidates(query, depth, query_id)
        self._remember(key, (tuple(cands), result))
        return tuple(cands), result, True

    def _remember(self, key: tuple[str, ...], value: Any) -> None:
        with self._memo_lock:
            self._memo[key] = value
            self._memo.move_to_end(key)
            while len(self._memo) > self.max_memo:
                self._memo.popitem(last=False)

    def _result_key(self, candidates_key: str, spec: str, settings: Settings) -> tuple[str, ...]:
        return ("result", candidates_key, method_key(spec, settings))

    def _query_result_key(
        self,
        query: str,
        corpus: Corpus,
        first_stage: str,
        depth: int,
        spec: str,
        settings: Settings,
        query_id: str | None,
    ) -> tuple[str, ...]:
        """The memo key of one method's result for one query (raises for a method it cannot key)."""
        return self._result_key(
            candidates_key(query, corpus, first_stage, depth, settings, query_id), spec, settings
        )

    def memoised(
        self,
        query: str,
        corpus: Corpus,
        first_stage: str,
        depth: int,
        spec: str,
        settings: Settings,
        query_id: str | None = None,
    ) -> RerankResult | None:
        """A result computed earlier in this process for exactly these inputs, or None."""
        try:
            key = self._query_result_key(query, corpus, first_stage, depth, spec, settings, query_id)
        except Exception:  # noqa: BLE001 - compare() reports a bad method in its result
            return None
        with self._memo_lock:
            return self._memo.get(key)

    def forget_result(
        self,
        query: str,
        corpus: Corpus,
        first_stage: str,
        depth: int,
        spec: str,
        settings: Settings,
        query_id: str | None = None,
    ) -> None:
        """Drop a memoised result, so the next compare runs the method again (a retry after a failure)."""
        key = self._query_result_key(query, corpus, first_stage, depth, spec, settings, query_id)
        with self._memo_lock:
            self._memo.pop(key, None)

    def compare(
        self,
        query: str,
        corpus: Corpus,
        first_stage: str,
        methods: Sequence[str],
        depth: int,
        settings: Settings,
        *,
        corpus_id: str = "",
        progress: ProgressFn | None = None,
        on_result: Callable[[str, RerankResult], None] | None = None,
        shadow: ShadowSink | None = None,
        prepare_limit: int = PREPARE_LIMIT,
        order: Callable[[Sequence[str]], Sequence[str]] | None = None,
        admit: Callable[[str], MethodError | None] | None = None,
        query_id: str | None = None,
    ) -> Run:
        """Run ``query`` through ``first_stage`` (top ``depth``) and rerank the same candidates with each
        of ``methods`` (in ``order(methods)`` if given). A method that cannot run gets a result with its
        error; the others go on. Fresh results go to ``shadow`` (never memoised ones). ``query_id`` is
        the query's id in the corpus's dataset when it is one of its queries (a run-file first stage
        lists candidates by it).

        ``admit(spec)`` is asked just before a method would run (never for a memoised result); a
        MethodError it returns (a quota reached, see :func:`rerank_core.serving.admission`) becomes that
        method's result, is neither memoised nor logged, and the other methods go on."""
        if depth <= 0:
            raise ValueError("depth must be positive")
        query = query.strip()
        if not query:
            raise ValueError("the query is empty")
        t0 = time.perf_counter()
        specs = list(order(methods) if order is not None else methods)
        # a fusion is a step after the methods it fuses: fusions come last
        specs = [s for s in specs if not is_fusion(s)] + [s for s in specs if is_fusion(s)]
        total = len(specs) + 1
        report(progress, 0, total, f"First stage: {first_stage} top {depth}")
        retriever = self.first_stage(first_stage, corpus, settings, _sub(progress, 0, total))
        ckey = candidates_key(query, corpus, first_stage, depth, settings, query_id)
        candidates, first, fresh_first = self.candidates(query, retriever, depth, ckey, query_id)
        run = Run(
            comparison=Comparison(
                query=query,
                depth=depth,
                candidates=candidates,
                first_stage=first,
                results=(),
                corpus_fingerprint=corpus.fingerprint,
            )
        )
        fresh: list[RerankResult] = [first] if fresh_first else []
        if fresh_first:
            run.fresh.append(first_stage)
        results: dict[str, RerankResult] = {}
        for i, spec in enumerate(specs, start=1):
            try:
                key = self._result_key(ckey, spec, settings)
            except Exception as exc:  # noqa: BLE001 - an unknown name or a bad option is that method's error
                results[spec] = RerankResult(method=spec, scale=first.scale, error=method_error(spec, exc))
                if on_result is not None:
                    on_result(spec, results[spec])
                continue
            with self._memo_lock:
                hit = self._memo.get(key)
            refused = admit(spec) if admit is not None and hit is None and candidates else None
            if refused is not None:
                results[spec] = RerankResult(method=spec, scale=first.scale, error=refused)
                if on_result is not None:
                    on_result(spec, results[spec])
                continue
            if hit is None and candidates and is_fusion(spec):
                report(progress, i, total, f"Fusing {spec}")
                hit = self._fuse(
                    spec,
                    _Query(query, query_id, corpus, first_stage, ckey, candidates, first),
                    settings,
                    _sub(progress, i, total),
                    prepare_limit,
                )
                fresh.append(hit)
                run.fresh.append(spec)
                self._remember(key, hit)
            elif hit is None and candidates:
                hit = self._run_one(
                    spec, query, corpus, candidates, first, settings, progress, i, total, prepare_limit
                )
                fresh.append(hit)
                run.fresh.append(spec)
                self._remember(key, hit)
            elif hit is None:  # nothing to rerank: an empty order, not an error
                hit = RerankResult(method=spec, scale=first.scale)
            results[spec] = hit
            if on_result is not None:
                on_result(spec, hit)
        report(progress, total, total, "done")
        run.comparison = Comparison(
            query=query,
            depth=depth,
            candidates=candidates,
            first_stage=first,
            results=tuple(results[s] for s in methods if s in results),
            corpus_fingerprint=corpus.fingerprint,
            total_s=time.perf_counter() - t0,
            method_specs=tuple(methods),
        )
        if shadow is not None and fresh:
            try:
                shadow.log_results(
                    corpus_id or corpus.fingerprint, query, fresh, first_stage=first_stage, depth=depth
                )
            except Exception as exc:  # noqa: BLE001 - the comparison stands without its log entry
                run.problems.append(f"the shadow log could not record this run: {exc}")
        return run

    def _fuse(
        self, spec: str, q: _Query, settings: Settings, progress: ProgressFn | None, prepare_limit: int
    ) -> RerankResult:
        """A fusion's result for one query: each component on the same candidates (memoised like any
        result, computed when missing, listed or not), then fused."""
        from rerank_core.fusion import fuse_results, fusion_config

        try:
            config = fusion_config(spec, settings)
        except Cancelled:
            raise
        except Exception as exc:  # noqa: BLE001 - a bad fusion is that method's error
            return RerankResult(method=spec, scale=q.first.scale, error=method_error(spec, exc))
        own = next((c for c in config.components if _same(c, q.first_stage)), None)
        parts = {
            comp: q.first
            if comp == own
            else self._component(comp, config.depth, q, settings, progress, prepare_limit)
            for comp in config.components
        }
        return fuse_results(
            spec,
            config,
            q.first,
            parts,
            query_id=q.query_id,
            corpus=q.corpus.fingerprint,
            own_first_stage=own,
        )

    def _component(
        self,
        comp: str,
        within: int,
        q: _Query,
        settings: Settings,
        progress: ProgressFn | None,
        prepare_limit: int,
    ) -> RerankResult:
        """One fusion component's result on the query's candidates: memoised, or computed now. Another
        first stage ranks the candidates by its own top ``within`` for the query."""
        from rerank_core.fusion import first_stage_on_candidates

        try:
            info = method_info(comp)
            key = self._result_key(q.candidates_key, comp, settings)
            if info.is_first_stage:
                key = (*key, f"within:{within}")
        except Exception as exc:  # noqa: BLE001 - reported through the fusion's result
            return RerankResult(method=comp, scale=q.first.scale, error=method_error(comp, exc))
        with self._memo_lock:
            hit = self._memo.get(key)
        if hit is not None:
            return hit
        if info.is_first_stage:
            try:
                retriever = self.first_stage(comp, q.corpus, settings, progress)
                hit = first_stage_on_candidates(retriever, q.query, q.query_id, q.first, within)
            except Cancelled:
                raise
            except Exception as exc:  # noqa: BLE001 - reported through the fusion's result
                return RerankResult(method=comp, scale=q.first.scale, error=method_error(comp, exc))
        else:
            hit = self._run_one(
                comp, q.query, q.corpus, q.candidates, q.first, settings, None, 0, 1, prepare_limit
            )
        self._remember(key, hit)
        return hit

    def _run_one(
        self,
        spec: str,
        query: str,
        corpus: Corpus,
        candidates: Sequence[Candidate],
        first: RerankResult,
        settings: Settings,
        progress: ProgressFn | None,
        step: int,
        total: int,
        prepare_limit: int,
    ) -> RerankResult:
        try:
            reranker = self.reranker(spec, settings)
        except Cancelled:
            raise
        except Exception as exc:  # noqa: BLE001 - a bad spec becomes that method's error
            return RerankResult(method=spec, scale=first.scale, error=method_error(spec, exc))
        if not reranker.loaded:
            report(progress, step, total, f"Loading {reranker.method_name}…")
        try:
            self.ready(
                reranker, corpus if len(corpus) <= prepare_limit else None, _sub(progress, step, total)
            )
        except Cancelled:
            raise
        except Exception:  # noqa: BLE001 - rerank() below reports a load failure in the result
            pass
        report(progress, step, total, f"Reranking {len(candidates)} candidates with {reranker.method_name}")
        # a fallback shows the first stage's scores, under the first stage's scale
        return reranker.rerank(query, candidates, top_k=None, first_stage_scale=first.scale)

    # -- a corpus's precomputation --------------------------------------------------------------------
    def status(self, spec: str, corpus: Corpus, settings: Settings) -> Status:
        """What building ``spec`` for ``corpus`` would still have to do (cheap: no model is loaded)."""
        info = method_info(spec)
        if info.is_first_stage:
            live = self.first_stage_ready(spec, corpus, settings)
            if live is not None:
                problem = getattr(live, "save_problem", None)
                return Status(spec, "ready", f"in memory only: {problem}" if problem else "in memory")
            if info.name == "hybrid" and fused_parts(MethodSpec.parse(spec).model):
                parts = [self.status(p, corpus, settings) for p in fused_parts(MethodSpec.parse(spec).model)]
                if all(p.done for p in parts):
                    return Status(spec, "saved", "fused from " + " and ".join(p.method for p in parts))
                return Status(spec, "missing", "needs " + " and ".join(p.method for p in parts if not p.done))
            if not info.needs_index:
                return Status(spec, "none", "no local index")
            if info.name == "hybrid":
                parts = [
                    self.status(p, corpus, s) for p, s in hybrid_parts(MethodSpec.parse(spec), settings)[:2]
                ]
                if all(p.done for p in parts):
                    return Status(spec, "saved", "fused from bm25 and dense")
                return Status(spec, "missing", "needs " + " and ".join(p.method for p in parts if not p.done))
            saved = index_dir(settings, corpus, method_key(spec, settings)) / "meta.json"
            return Status(spec, "saved", "on disk") if saved.is_file() else Status(spec, "missing")
        if not info.prepares:
            return Status(spec, "none", "nothing to precompute")
        try:
            reranker = self.reranker(spec, settings)
            if not reranker.loaded:
                reranker.load()
            is_prepared = getattr(reranker, "prepared", None)
            if is_prepared is not None and is_prepared(corpus):
                return Status(spec, "saved", "encodings on disk")
        except Exception as exc:  # noqa: BLE001 - shown as the status
            return Status(spec, "missing", str(MethodError.from_exception(exc)))
        return Status(spec, "missing")

    def build(
        self,
        specs: Sequence[str],
        corpus: Corpus,
        settings: Settings,
        progress: ProgressFn | None = None,
        on_done: Callable[[str, float | None, BaseException | None], None] | None = None,
    ) -> dict[str, float | BaseException]:
        """Precompute what each method needs for ``corpus``: a first stage's index (built and saved), a
        reranker's model load and per-corpus preparation. Returns seconds per method, or the error."""
        out: dict[str, float | BaseException] = {}
        for i, spec in enumerate(specs):
            sub = _sub(progress, i, len(specs), scale=len(specs))
            t0 = time.perf_counter()
            error: BaseException | None = None
            try:
                if method_info(spec).is_first_stage:
                    self.first_stage(spec, corpus, settings, sub)
                else:
                    self.ready(self.reranker(spec, settings), corpus, sub)
            except Cancelled:
                raise
            except Exception as exc:  # noqa: BLE001 - one method's failure never stops the others
                error = exc
            took = time.perf_counter() - t0
            out[spec] = error if error is not None else took
            if on_done is not None:
                on_done(spec, None if error is not None else took, error)
        report(progress, len(specs), len(specs), "done")
        return out

    def forget(self, corpus: Corpus) -> None:
        """Drop what this process holds for a corpus (after it was deleted)."""
        with self._lock:
            for key in [k for k in self._cells if corpus.fingerprint in k]:
                del self._cells[key]
        with self._memo_lock:
            for key in [k for k in self._memo if len(k) > 1 and corpus.fingerprint in k[1]]:
                del self._memo[key]


@dataclass(frozen=True)
class _Query:
    """One query of :meth:`Runtime.compare` with its candidates (what a fusion's components need)."""

    query: str
    query_id: str | None
    corpus: Corpus
    first_stage: str
    candidates_key: str
    candidates: tuple[Candidate, ...]
    first: RerankResult


def _same(a: str, b: str) -> bool:
    return str(MethodSpec.parse(a)) == str(MethodSpec.parse(b))


def fused_parts(model: str | None) -> list[str]:
    """The first stages ``hybrid:A+B`` fuses (empty for plain hybrid); see :mod:`rerank_core.retrieval.hybrid`."""
    if not model or "+" not in model:
        return []
    from rerank_core.retrieval.hybrid import fused_parts as parts

    return parts(model)


def hybrid_parts(
    parsed: MethodSpec, settings: Settings
) -> tuple[tuple[str, Settings], tuple[str, Settings], dict]:
    """The bm25 and dense parts of ``hybrid`` (spec and the settings that configure them) and its own
    options. The hybrid's ``bm25_<option>``/``dense_<option>`` (and ``hybrid:<model>``) override the
    parts' ``[methods.bm25]``/``[methods.dense]``, so a part with the same options as a first stage of its
    own IS that first stage: nothing is indexed twice."""
    from dataclasses import replace

    from rerank_core.retrieval.hybrid import split_options

    own, bm25_opts, dense_opts = split_options({**settings.method_options("hybrid"), "model": parsed.model})

    def part(name: str, opts: dict) -> Settings:
        if not opts:
            return settings
        return replace(
            settings, methods={**settings.methods, name: {**settings.method_options(name), **opts}}
        )

    return ("bm25", part("bm25", bm25_opts)), ("dense", part("dense", dense_opts)), own


def candidates_key(
    query: str,
    corpus: Corpus,
    first_stage: str,
    depth: int,
    settings: Settings,
    query_id: str | None = None,
) -> str:
    """What a first stage's candidates depend on: the corpus, the configured first stage, depth, the
    query (and its id, when given: a run file lists candidates by id)."""
    key = f"{corpus.fingerprint}|{method_key(first_stage, settings)}|{depth}|{query.strip()}"
    return key if query_id is None else f"{key}|{query_id}"


def _sub(progress: ProgressFn | None, step: int, total: int, scale: int | None = None) -> ProgressFn | None:
    """A progress callback for one step's own work, reported as a fraction of the whole when ``scale``."""
    if progress is None:
        return None

    def inner(done: int, of: int, message: str = "") -> None:
        if scale:
            frac = (step + (done / of if of else 0.0)) / scale
            progress(int(frac * 1000), 1000, message)
        else:
            progress(step, total, f"{message} {done}/{of}" if of else message)

    return inner


def method_error(spec: str, exc: BaseException) -> MethodError:
    """The error shown for a method that could not even be created."""
    if isinstance(exc, ImportError):
        return MethodError(
            kind="unavailable",
            message=f"The {MethodSpec.parse(spec).name} backend is not part of this installation ({exc}).",
            hint="pip install -r requirements.txt, or update the checkout",
        )
    return MethodError.from_exception(exc)


def describe_error(exc: BaseException) -> tuple[str, str | None]:
    """(message, hint) for an error met at a boundary (a page, the command line)."""
    if isinstance(exc, RerankError):
        return exc.message, exc.hint
    if isinstance(exc, ImportError):
        return f"A part of the app is not installed yet ({exc}).", "pip install -r requirements.txt"
    return f"{type(exc).__name__}: {exc}", None


__all__ = [
    "PREPARE_LIMIT",
    "Ready",
    "Run",
    "Runtime",
    "ShadowSink",
    "Status",
    "delete_indexes",
    "describe_error",
    "index_dir",
    "method_error",
]
