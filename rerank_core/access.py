"""Who may do what: roles, the actor behind a session, and the guarded entry points every write goes through.

Three roles, each with everything the one before it may do:

- ``viewer``: browse corpora and results, compare, export labels;
- ``labeller``: also grade (set, skip and undo their own labels);
- ``admin``: also upload, re-chunk, rename and delete corpora, import labels, build indexes, run
  benchmarks and type API keys.

An :class:`Actor` is an identity with a role. With sign-in off (the default, a laptop), everyone is an
admin named by the judge field, exactly as before sign-in existed. With sign-in on (``[access]
sign_in = true``), the identity is the signed-in user's email and the role comes from the ``[access]``
lists (:meth:`AccessSettings.role_for`); a signed-in user writes labels only under that identity.
With demo mode on and sign-in off, anonymous visitors get ``[demo] anonymous_role`` (viewer unless
configured otherwise).

The core refuses what a role may not do, whatever the UI shows: pages reach the label store through
:class:`GuardedStore`, the stored corpora through :class:`GuardedWorkspace`, and benchmarks and builds
through :func:`run_benchmark` and :func:`build`, each of which checks the actor first and raises
:class:`AccessDenied` (with what role would be needed) before anything is written or computed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from rerank_core.errors import ConfigError, RerankError

if TYPE_CHECKING:  # pragma: no cover
    from rerank_core.judgements import JudgementStore, UndoResult
    from rerank_core.workspace import Chunking, CorpusInfo, StoredCorpus, Workspace


class Role(str, Enum):
    VIEWER = "viewer"
    LABELLER = "labeller"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _ORDER.index(self)

    @classmethod
    def parse(cls, value: object, where: str) -> Role:
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise ConfigError(
                f"{where} is {value!r}, which is not a role",
                hint=f"use one of: {', '.join(r.value for r in cls)}",
            ) from None


_ORDER = (Role.VIEWER, Role.LABELLER, Role.ADMIN)


class Permission(str, Enum):
    BROWSE = "browse"
    COMPARE = "compare"
    EXPORT = "export"
    GRADE = "grade"
    UPLOAD = "upload"  # add, re-chunk and rename corpora
    DELETE = "delete"  # delete corpora (and their labels)
    IMPORT = "import"  # import judgements files and dataset qrels into the label store
    BUILD = "build"  # precompute a corpus's indexes and encodings on the Corpus page
    BENCHMARK = "benchmark"
    MANAGE_KEYS = "manage-keys"  # type API keys into the app
    REMOTE_CODE = "remote-code"  # let a model run its own code from the hub (trust_remote_code)


#: the lowest role that holds each permission
REQUIRED_ROLE: dict[Permission, Role] = {
    Permission.BROWSE: Role.VIEWER,
    Permission.COMPARE: Role.VIEWER,
    Permission.EXPORT: Role.VIEWER,
    Permission.GRADE: Role.LABELLER,
    Permission.UPLOAD: Role.ADMIN,
    Permission.DELETE: Role.ADMIN,
    Permission.IMPORT: Role.ADMIN,
    Permission.BUILD: Role.ADMIN,
    Permission.BENCHMARK: Role.ADMIN,
    Permission.MANAGE_KEYS: Role.ADMIN,
    Permission.REMOTE_CODE: Role.ADMIN,
}


def permissions(role: Role) -> frozenset[Permission]:
    """Everything ``role`` may do."""
    return frozenset(p for p, needed in REQUIRED_ROLE.items() if role.rank >= needed.rank)


class AccessDenied(RerankError):
    """The actor's role does not allow this action."""

    kind = "access-denied"


@dataclass(frozen=True)
class Actor:
    """Who acts: an identity (the judge name labels are stored under) and a role.

    ``signed_in`` is True for an identity that a sign-in provider vouched for; such an actor can write
    labels only under its own identity."""

    identity: str
    role: Role
    signed_in: bool = False

    def can(self, permission: Permission) -> bool:
        return permission in permissions(self.role)

    def require(self, permission: Permission, what: str) -> None:
        """Raise :class:`AccessDenied` unless the actor may ``permission`` (``what`` names the action)."""
        if not self.can(permission):
            needed = REQUIRED_ROLE[permission]
            raise AccessDenied(
                f"{self.identity} ({self.role.value}) may not {what}: that needs the {needed.value} role.",
                hint="ask an admin of this deployment to give you the role ([access] in rerank.toml)",
            )

    def check_judge(self, judge: str) -> None:
        """A signed-in actor labels only as itself."""
        if self.signed_in and judge != self.identity:
            raise AccessDenied(
                f"{self.identity} may not write labels as {judge!r}: signed-in users label under their own name.",
                hint="grade without naming another judge",
            )

    @property
    def judge(self) -> str:
        return self.identity


# -- configuration ---------------------------------------------------------------------------------------


def _names(value: object, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError(
            f"{where} must be a list of strings, not {value!r}", hint='for example ["@example.com"]'
        )
    return tuple(v.strip() for v in value if v.strip())


def _flag(value: object, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in (
        "1",
        "true",
        "yes",
        "on",
        "0",
        "false",
        "no",
        "off",
    ):
        return value.strip().lower() in ("1", "true", "yes", "on")
    raise ConfigError(f"{where} must be true or false, not {value!r}", hint="write true or false")


def _number(value: object, where: str, kind: type = int, minimum: float = 0) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        number = None
    if number is None or isinstance(value, bool) or number < minimum:
        raise ConfigError(
            f"{where} must be a number of at least {minimum}, not {value!r}",
            hint=f"for example {max(minimum, 1)}",
        )
    return number


def _check_keys(table: Mapping[str, Any], known: Iterable[str], section: str) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {', '.join(unknown)} in [{section}]",
            hint=f"[{section}] takes: {', '.join(sorted(known))} (see rerank.example.toml)",
        )


def matches(email: str, pattern: str) -> bool:
    """``pattern`` is an email (case-insensitive), ``@domain`` (every address of that domain) or ``*``."""
    email, pattern = email.strip().lower(), pattern.strip().lower()
    if pattern == "*":
        return bool(email)
    if pattern.startswith("@"):
        return email.endswith(pattern) and len(email) > len(pattern)
    return email == pattern


@dataclass(frozen=True)
class AccessSettings:
    """``[access]``: sign-in and who gets which role.

    ``admins``, ``labellers`` and ``viewers`` list emails, ``@domain`` entries or ``*``; a user in
    several lists gets the highest role. ``default_role`` is the role of a signed-in user in no list
    (``"none"``: refused, the page says so). ``provider`` names an ``[auth.<provider>]`` section of
    Streamlit's secrets when there are several."""

    sign_in: bool = False
    admins: tuple[str, ...] = ()
    labellers: tuple[str, ...] = ()
    viewers: tuple[str, ...] = ()
    default_role: Role | None = Role.VIEWER
    provider: str | None = None

    KEYS = ("sign_in", "admins", "labellers", "viewers", "default_role", "provider")

    @classmethod
    def from_table(cls, table: Mapping[str, Any], env: Mapping[str, str] | None = None) -> AccessSettings:
        if not isinstance(table, Mapping):
            raise ConfigError("[access] must be a table", hint="see rerank.example.toml")
        _check_keys(table, cls.KEYS, "access")
        env = env or {}
        sign_in = env.get("RERANK_SIGN_IN") or table.get("sign_in", False)
        default = table.get("default_role", "viewer")
        provider = table.get("provider")
        return cls(
            sign_in=_flag(sign_in, "[access] sign_in (or RERANK_SIGN_IN)"),
            admins=_names(table.get("admins"), "[access] admins"),
            labellers=_names(table.get("labellers"), "[access] labellers"),
            viewers=_names(table.get("viewers"), "[access] viewers"),
            default_role=None
            if str(default).strip().lower() == "none"
            else Role.parse(default, "[access] default_role"),
            provider=str(provider).strip() or None if provider else None,
        )

    def role_for(self, email: str) -> Role | None:
        """The role of a signed-in user (the highest list that names them), else ``default_role``."""
        for role, patterns in (
            (Role.ADMIN, self.admins),
            (Role.LABELLER, self.labellers),
            (Role.VIEWER, self.viewers),
        ):
            if any(matches(email, p) for p in patterns):
                return role
        return self.default_role


@dataclass(frozen=True)
class DemoSettings:
    """``[demo]``: a hosted demo's corpora, example queries, methods and limits on hosted calls.

    ``corpora`` are stored corpus ids (``c-...``), ``"sample"`` (the built-in sample) or paths of BEIR
    folders or zips (stored on first use); the first is the one a visitor opens on. ``example_queries``
    maps the same names to the queries offered with one click. ``methods`` and ``first_stages`` restrict
    what the pages offer (empty: everything). ``quota`` hosted and LLM method runs per user in any
    ``quota_window_h`` hours, and at most ``rate_per_minute`` of them in any minute (0: no limit).
    ``anonymous_role`` is the role of visitors when sign-in is off."""

    enabled: bool = False
    corpora: tuple[str, ...] = ("sample",)
    example_queries: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    methods: tuple[str, ...] = ()
    first_stages: tuple[str, ...] = ()
    quota: int = 20
    quota_window_h: float = 24.0
    rate_per_minute: int = 4
    anonymous_role: Role = Role.VIEWER

    KEYS = (
        "enabled",
        "corpora",
        "example_queries",
        "methods",
        "first_stages",
        "quota",
        "quota_window_h",
        "rate_per_minute",
        "anonymous_role",
    )

    @classmethod
    def from_table(cls, table: Mapping[str, Any], env: Mapping[str, str] | None = None) -> DemoSettings:
        if not isinstance(table, Mapping):
            raise ConfigError("[demo] must be a table", hint="see rerank.example.toml")
        _check_keys(table, cls.KEYS, "demo")
        env = env or {}
        examples = table.get("example_queries", {})
        if not isinstance(examples, Mapping):
            raise ConfigError(
                "[demo] example_queries must be a table of corpus name -> list of queries",
                hint='[demo.example_queries] then sample = ["a question", "another"]',
            )
        corpora = _names(table.get("corpora", ["sample"]), "[demo] corpora") or ("sample",)
        return cls(
            enabled=_flag(
                env.get("RERANK_DEMO") or table.get("enabled", False), "[demo] enabled (or RERANK_DEMO)"
            ),
            corpora=corpora,
            example_queries={str(k): _names(v, f"[demo.example_queries] {k}") for k, v in examples.items()},
            methods=_names(table.get("methods"), "[demo] methods"),
            first_stages=_names(table.get("first_stages"), "[demo] first_stages"),
            quota=_number(table.get("quota", 20), "[demo] quota"),
            quota_window_h=_number(table.get("quota_window_h", 24.0), "[demo] quota_window_h", float, 0.01),
            rate_per_minute=_number(table.get("rate_per_minute", 4), "[demo] rate_per_minute"),
            anonymous_role=Role.parse(table.get("anonymous_role", "viewer"), "[demo] anonymous_role"),
        )

    def offers(self, method: str, first_stage: bool = False) -> bool:
        """Whether the demo offers ``method`` (always, when demo mode is off or the list is empty)."""
        allowed = self.first_stages if first_stage else self.methods
        if not self.enabled or not allowed:
            return True
        return method.partition(":")[0] in allowed


def anonymous_actor(judge: str, access: AccessSettings, demo: DemoSettings) -> Actor:
    """The actor of a session without sign-in: an admin named by the judge field (a laptop), or the
    demo's anonymous role when demo mode is on."""
    role = demo.anonymous_role if demo.enabled else Role.ADMIN
    return Actor(identity=judge, role=role, signed_in=False)


def signed_in_actor(email: str, access: AccessSettings) -> Actor:
    """The actor of a signed-in user; :class:`AccessDenied` when the configuration gives them no role."""
    role = access.role_for(email)
    if role is None:
        raise AccessDenied(
            f"{email} is signed in but has no role in this deployment.",
            hint="ask an admin to add you to [access] admins, labellers or viewers",
        )
    return Actor(identity=email, role=role, signed_in=True)


# -- guarded entry points --------------------------------------------------------------------------------


class GuardedStore:
    """The judgement store as one actor may use it.

    Reads pass through. Every write checks the actor's permission first and raises
    :class:`AccessDenied` before touching the database; a signed-in actor writes labels only under its
    own identity. The shadow log is written for every actor (it records runs, not opinions)."""

    def __init__(self, store: JudgementStore, actor: Actor) -> None:
        self._store = store
        self.actor = actor

    def __repr__(self) -> str:
        return f"GuardedStore({self._store!r}, {self.actor.identity!r} as {self.actor.role.value})"

    # -- writes ----------------------------------------------------------------------------------
    def set_grade(
        self,
        corpus_id: str,
        query_id: str,
        doc_id: str,
        grade: int | None,
        judge: str | None = None,
        rationale: str | None = None,
    ) -> None:
        self.actor.require(Permission.GRADE, "grade documents")
        judge = judge or self.actor.judge
        self.actor.check_judge(judge)
        self._store.set_grade(corpus_id, query_id, doc_id, grade, judge=judge, rationale=rationale)

    def add_query(self, corpus_id: str, text: str, query_id: str | None = None) -> str:
        self.actor.require(Permission.GRADE, "add queries to the label store")
        return self._store.add_query(corpus_id, text, query_id=query_id)

    def undo(self, corpus_id: str, judge: str | None = None) -> UndoResult | None:
        judge = judge or self.actor.judge
        if judge == self.actor.judge:
            self.actor.require(Permission.GRADE, "undo labels")
        else:  # taking back another judge's action (an import under its own judge name)
            self.actor.require(Permission.IMPORT, f"undo the labels of {judge!r}")
        return self._store.undo(corpus_id, judge=judge)

    def import_judgements(
        self, corpus_id: str, rows: Iterable[Sequence[Any]], queries: Mapping[str, str] | None = None
    ) -> int:
        self.actor.require(Permission.IMPORT, "import judgements")
        return self._store.import_judgements(corpus_id, rows, queries=queries)

    def import_qrels(
        self,
        corpus_id: str,
        qrels: Mapping[str, Mapping[str, int]],
        judge: str | None = None,
        queries: Mapping[str, str] | None = None,
    ) -> int:
        from rerank_core.judgements import IMPORT_JUDGE

        self.actor.require(Permission.IMPORT, "import judgements")
        return self._store.import_qrels(corpus_id, qrels, judge=judge or IMPORT_JUDGE, queries=queries)

    def set_tags(self, corpus_id: str, tags: Mapping[str, Iterable[str]]) -> int:
        self.actor.require(Permission.IMPORT, "set query tags")
        return self._store.set_tags(corpus_id, tags)

    def set_guideline(self, corpus_id: str, text: str, *, updated_by: str | None = None) -> None:
        self.actor.require(Permission.IMPORT, "edit the judging guideline")
        self._store.set_guideline(corpus_id, text, updated_by=updated_by or self.actor.identity)

    def delete_corpus(self, corpus_id: str, *, judgements: bool = False) -> dict[str, int]:
        self.actor.require(Permission.DELETE, "delete a corpus's labels")
        return self._store.delete_corpus(corpus_id, judgements=judgements)

    def log_results(self, corpus_id: str, query_text: str, results: Sequence[Any], **kwargs: Any) -> int:
        return self._store.log_results(corpus_id, query_text, results, **kwargs)

    # -- reads -----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self._store.url

    def grades(self, corpus_id: str, query_id: str, **kwargs: Any) -> dict[str, int | None]:
        return self._store.grades(corpus_id, query_id, **kwargs)

    def qrels(self, corpus_id: str, **kwargs: Any) -> dict[str, dict[str, int]]:
        return self._store.qrels(corpus_id, **kwargs)

    def judgements(self, corpus_id: str, *args: Any, **kwargs: Any) -> list[Any]:
        return self._store.judgements(corpus_id, *args, **kwargs)

    def judgement_count(self, corpus_id: str, include_skipped: bool = False) -> int:
        return self._store.judgement_count(corpus_id, include_skipped)

    def judges(self, corpus_id: str) -> list[str]:
        return self._store.judges(corpus_id)

    def history(self, corpus_id: str, query_id: str | None = None, judge: str | None = None) -> list[dict]:
        return self._store.history(corpus_id, query_id=query_id, judge=judge)

    def queries(self, corpus_id: str) -> dict[str, str]:
        return self._store.queries(corpus_id)

    def tags(self, corpus_id: str) -> dict[str, tuple[str, ...]]:
        return self._store.tags(corpus_id)

    def guideline(self, corpus_id: str) -> Any:
        return self._store.guideline(corpus_id)

    def corpora(self) -> list[str]:
        return self._store.corpora()

    def resolve_query_id(
        self, corpus_id: str, text: str, dataset_queries: Mapping[str, str] | None = None
    ) -> str:
        return self._store.resolve_query_id(corpus_id, text, dataset_queries)

    def shadow_log(self, corpus_id: str | None = None, limit: int | None = 1000) -> list[dict]:
        return self._store.shadow_log(corpus_id, limit=limit)


class GuardedWorkspace:
    """The stored corpora as one actor may use them.

    ``visible`` (a demo's corpora) limits which corpora a non-admin may list and open; an admin sees
    every corpus. Adding, re-chunking and renaming need the upload permission, deleting the delete
    permission; the built-in sample is stored for anyone (it is part of the app)."""

    def __init__(self, workspace: Workspace, actor: Actor, visible: Sequence[str] | None = None) -> None:
        self._ws = workspace
        self.actor = actor
        self.visible = None if visible is None or actor.role is Role.ADMIN else tuple(visible)

    def __repr__(self) -> str:
        return f"GuardedWorkspace({self._ws!r}, {self.actor.identity!r} as {self.actor.role.value})"

    def _may_see(self, corpus_id: str) -> bool:
        return self.visible is None or corpus_id in self.visible

    def __contains__(self, corpus_id: object) -> bool:
        return isinstance(corpus_id, str) and self._may_see(corpus_id) and corpus_id in self._ws

    def list(self) -> list[CorpusInfo]:
        return [info for info in self._ws.list() if self._may_see(info.id)]

    def get(self, corpus_id: str) -> StoredCorpus:
        from rerank_core.workspace import UnknownCorpus

        if not self._may_see(corpus_id):
            raise UnknownCorpus(
                f"this demo does not show corpus {corpus_id!r}.",
                hint="open the demo's own corpora from the Corpus page",
            )
        return self._ws.get(corpus_id)

    def sample(self) -> StoredCorpus:
        return self._ws.sample()

    def add(self, documents: Sequence[Any], **kwargs: Any) -> StoredCorpus:
        self.actor.require(Permission.UPLOAD, "upload corpora")
        return self._ws.add(documents, **kwargs)

    def rechunk(self, corpus_id: str, chunking: Chunking) -> StoredCorpus:
        self.actor.require(Permission.UPLOAD, "re-chunk corpora")
        return self._ws.rechunk(self.get(corpus_id).id, chunking)

    def rename(self, corpus_id: str, name: str) -> CorpusInfo:
        self.actor.require(Permission.UPLOAD, "rename corpora")
        return self._ws.rename(corpus_id, name)

    def delete(self, corpus_id: str) -> StoredCorpus:
        self.actor.require(Permission.DELETE, "delete corpora")
        return self._ws.delete(corpus_id)


def demo_corpora(workspace: Workspace, demo: DemoSettings) -> dict[str, str]:
    """The demo's corpora as ``{name in [demo] corpora: stored corpus id}``, in the configured order.

    ``"sample"`` is the built-in sample (stored on first use), ``c-...`` a corpus the workspace holds, and
    anything else the path of a BEIR folder or zip, stored on first use (the same content is the same id,
    so a restart finds it again). Raises :class:`ConfigError` naming the entry that cannot be used."""
    from rerank_core.workspace import CORPUS_ID_PREFIX

    out: dict[str, str] = {}
    for entry in demo.corpora:
        if entry == "sample":
            out[entry] = workspace.sample().id
        elif entry.startswith(CORPUS_ID_PREFIX):
            if entry not in workspace:
                raise ConfigError(
                    f"[demo] corpora names {entry}, which this server's workspace does not hold",
                    hint="upload it on the Corpus page as an admin and copy its id, or name a BEIR folder instead",
                )
            out[entry] = entry
        else:
            from pathlib import Path

            from rerank_core.readers import read_beir

            path = Path(entry).expanduser()
            if not path.exists():
                raise ConfigError(
                    f"[demo] corpora names {entry!r}, which is neither 'sample', a stored corpus id nor an "
                    "existing path",
                    hint="give a BEIR folder or zip (corpus.jsonl, queries.jsonl, qrels/), a c-... id or sample",
                )
            try:
                read = read_beir(path)
            except RerankError as exc:
                raise ConfigError(
                    f"[demo] corpus {entry!r} cannot be read: {exc.message}", hint=exc.hint
                ) from exc
            out[entry] = workspace.add_dataset(read.dataset, files=(path.name,)).id
    return out


def demo_examples(demo: DemoSettings, ids: Mapping[str, str], corpus_id: str) -> tuple[str, ...] | None:
    """The example queries the demo configures for ``corpus_id`` (None: none configured for it)."""
    for name, cid in ids.items():
        if cid == corpus_id and name in demo.example_queries:
            return demo.example_queries[name]
    return demo.example_queries.get(corpus_id)


def run_benchmark(actor: Actor, *args: Any, **kwargs: Any) -> Any:
    """:func:`rerank_core.benchmark.run_benchmark` for an actor who may run benchmarks."""
    actor.require(Permission.BENCHMARK, "run benchmarks")
    from rerank_core.benchmark import run_benchmark as run

    return run(*args, **kwargs)


def build(actor: Actor, runtime: Any, *args: Any, **kwargs: Any) -> Any:
    """:meth:`rerank_core.pipeline.Runtime.build` for an actor who may build indexes."""
    actor.require(Permission.BUILD, "build indexes and encodings")
    return runtime.build(*args, **kwargs)


__all__ = [
    "REQUIRED_ROLE",
    "AccessDenied",
    "AccessSettings",
    "Actor",
    "DemoSettings",
    "GuardedStore",
    "GuardedWorkspace",
    "Permission",
    "Role",
    "anonymous_actor",
    "build",
    "demo_corpora",
    "demo_examples",
    "matches",
    "permissions",
    "run_benchmark",
    "signed_in_actor",
]
