"""Small, frozen result types shared by every part of the core."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum


class ScoreScale(str, Enum):
    """What a score means. Shown next to every score so nobody thresholds a logit as a probability."""

    BM25 = "BM25 score"
    COSINE = "cosine similarity"
    RRF = "reciprocal-rank-fusion score"
    FUSED = "weighted normalised score"
    LOGIT = "logit"
    PROBABILITY = "probability (0-1)"
    MAXSIM = "MaxSim (sum over query tokens)"
    LLM_GRADE = "LLM grade (0-10)"
    LLM_LISTWISE = "LLM listwise position score"
    API_RELEVANCE = "API relevance (0-1)"
    FIRST_STAGE = "first-stage score"

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.value


@dataclass(frozen=True)
class Document:
    """One retrievable unit: a whole document or a chunk of one.

    ``parent_id`` names the source document of a chunk (None for an unchunked document) and
    ``source`` the file it came from.
    """

    id: str
    text: str
    title: str = ""
    source: str = ""
    parent_id: str | None = None

    @property
    def full_text(self) -> str:
        """Title and text as models see them."""
        return f"{self.title}\n{self.text}" if self.title else self.text


class Corpus(Sequence[Document]):
    """An ordered, id-addressable collection of documents with a content fingerprint.

    The fingerprint changes whenever any id, title or text changes; indexes and caches are keyed
    on it.
    """

    def __init__(self, documents: Iterable[Document], name: str = "corpus") -> None:
        self.name = name
        self._docs: tuple[Document, ...] = tuple(documents)
        self._by_id: dict[str, int] = {}
        for i, doc in enumerate(self._docs):
            if doc.id in self._by_id:
                raise ValueError(f"duplicate document id {doc.id!r} in corpus {name!r}")
            self._by_id[doc.id] = i
        h = hashlib.sha256()
        for doc in self._docs:
            for part in (doc.id, doc.title, doc.text):
                h.update(part.encode("utf-8", "surrogatepass"))
                h.update(b"\x00")
        self.fingerprint = h.hexdigest()[:16]

    def __len__(self) -> int:
        return len(self._docs)

    def __getitem__(self, i):  # type: ignore[override]
        return self._docs[i]

    def __iter__(self) -> Iterator[Document]:
        return iter(self._docs)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._by_id

    def get(self, doc_id: str) -> Document:
        return self._docs[self._by_id[doc_id]]

    def index_of(self, doc_id: str) -> int:
        return self._by_id[doc_id]

    @property
    def ids(self) -> list[str]:
        return [d.id for d in self._docs]

    def __repr__(self) -> str:
        return f"Corpus(name={self.name!r}, documents={len(self)}, fingerprint={self.fingerprint})"


@dataclass(frozen=True)
class Candidate:
    """A first-stage hit handed to every reranker (the same list for every method)."""

    doc_id: str
    text: str
    first_stage_rank: int  # 1-based
    first_stage_score: float
    title: str = ""

    @property
    def full_text(self) -> str:
        return f"{self.title}\n{self.text}" if self.title else self.text

    @property
    def text_hash(self) -> str:
        return hashlib.sha256(self.full_text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


@dataclass(frozen=True)
class Scores:
    """What a backend's ``score`` returns: one value per candidate, in the candidates' order.

    ``truncated[i]`` says candidate i was cut at the model's max length; ``flagged[i]`` says its
    score is not the model's own judgement (for example an LLM answer that left it out, so it keeps
    its first-stage position). ``notes`` are shown to the user. ``usage`` is what a service reported
    it billed or counted for the call (``{"search_units": 1}``, ``{"total_tokens": 812}``); the
    base class puts it on the result.
    """

    values: Sequence[float]
    truncated: Sequence[bool] | None = None
    flagged: Sequence[bool] | None = None
    notes: tuple[str, ...] = ()
    usage: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RankedItem:
    doc_id: str
    rank: int  # 1-based position in this method's order
    score: float
    first_stage_rank: int
    truncated: bool = False
    flagged: bool = False

    @property
    def movement(self) -> int:
        """Positive when the method moved the document up against the first stage."""
        return self.first_stage_rank - self.rank

    def is_new(self, k: int) -> bool:
        """The document entered a shown top ``k`` from below the first stage's top ``k``."""
        return self.first_stage_rank > k


@dataclass(frozen=True)
class MethodError:
    """Why a method produced no (or a fallback) order. ``kind`` is the error class's ``kind``."""

    kind: str
    message: str
    hint: str | None = None

    @classmethod
    def from_exception(cls, exc: BaseException) -> MethodError:
        from rerank_core.errors import RerankError

        if isinstance(exc, RerankError):
            return cls(kind=exc.kind, message=exc.message, hint=exc.hint)
        return cls(kind="failed", message=f"{type(exc).__name__}: {exc}")

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} Fix: {self.hint}"


@dataclass(frozen=True)
class RerankResult:
    """One method's answer for one query, the same shape for every method.

    ``latency_ms`` is the query time only; ``model_load_s`` is the one-off load time paid by the
    first call in this process (0 afterwards is reported as the load measured then).
    """

    method: str
    scale: ScoreScale
    items: tuple[RankedItem, ...] = ()
    latency_ms: float = 0.0
    model_load_s: float = 0.0
    error: MethodError | None = None
    fallback: bool = False
    notes: tuple[str, ...] = ()
    label: str = ""  # human description, e.g. "zero-shot MiniLM MaxSim (not a trained ColBERT)"
    precision: str = (
        ""  # the numeric path the scores came from (fp32, bf16, onnx-int8, ...); "" = not applicable
    )
    usage: Mapping[str, float] = field(
        default_factory=dict, compare=False
    )  # billed units / tokens a service reported

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def available(self) -> bool:
        return self.error is None or self.fallback or self.error.kind not in _UNAVAILABLE_KINDS

    @property
    def ids(self) -> list[str]:
        return [it.doc_id for it in self.items]

    @property
    def truncated_ids(self) -> list[str]:
        return [it.doc_id for it in self.items if it.truncated]


_UNAVAILABLE_KINDS = frozenset({"unavailable", "model-not-found", "missing-api-key"})


FIRST_STAGE_KIND = "first-stage"
RERANKER_KIND = "reranker"


@dataclass(frozen=True)
class MethodInfo:
    """What the app knows about a method, read from its backend class (see ``registry.method_info``).

    ``secrets`` are the environment-variable names of the secrets it reads (the only ones it is
    given); ``reads`` the settings fields it reads besides its ``[methods.<name>]`` options. Both
    enter every cache key of the method, secrets only as hashes.
    """

    name: str
    kind: str  # FIRST_STAGE_KIND or RERANKER_KIND
    title: str
    description: str
    scale: ScoreScale
    hosted: bool = False  # calls a remote service (hosted rerankers fall back to the first-stage order)
    offline: bool = True  # can run with no network, given local weights
    default_model: str | None = None
    secrets: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    needs_index: bool = False  # a first stage that builds a local index over the corpus
    prepares: bool = False  # a reranker with per-corpus precomputation (document encodings)
    takes_model: bool = True  # ``name:model`` picks a model
    precisions: tuple[str, ...] = ()  # the numeric paths its ``precision`` option takes (empty: none)

    @property
    def is_first_stage(self) -> bool:
        return self.kind == FIRST_STAGE_KIND

    @classmethod
    def of(cls, backend: type, kind: str, **extra: object) -> MethodInfo:
        """The metadata a backend class declares in its class attributes (``title``, ``description``,
        ``scale``, ``hosted``, ``offline``, ``default_model``, ``secrets``, ``reads``, ``precisions``)."""
        return cls(
            name=backend.name,  # type: ignore[attr-defined]
            kind=kind,
            title=getattr(backend, "title", "") or backend.name,  # type: ignore[attr-defined]
            description=getattr(backend, "description", ""),
            scale=backend.scale,  # type: ignore[attr-defined]
            hosted=bool(getattr(backend, "hosted", False)),
            offline=bool(getattr(backend, "offline", True)),
            default_model=getattr(backend, "default_model", None),
            secrets=tuple(getattr(backend, "secrets", ())),
            reads=tuple(getattr(backend, "reads", ())),
            precisions=tuple(getattr(backend, "precisions", ())),
            **extra,  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class MethodSpec:
    """A parsed method name: ``name`` or ``name:model``."""

    name: str
    model: str | None = None
    options: dict = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def parse(cls, spec: str) -> MethodSpec:
        spec = spec.strip()
        name, sep, model = spec.partition(":")
        return cls(name=name.strip(), model=model.strip() or None if sep else None)

    def __str__(self) -> str:
        return self.name if not self.model else f"{self.name}:{self.model}"


@dataclass
class Dataset:
    """A corpus with queries and relevance judgements (BEIR layout, or labels from the store).

    ``qrels[query_id][doc_id] = grade`` (graded gain; 0 = judged not relevant).
    """

    name: str
    corpus: Corpus
    queries: dict[str, str] = field(default_factory=dict)
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def judged_query_ids(self) -> list[str]:
        """Queries with at least one judgement, in the queries' order."""
        return [q for q in self.queries if q in self.qrels and self.qrels[q]]
