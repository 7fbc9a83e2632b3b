"""The catalog: metadata of projects, runs, collections, versions, aliases and lineage.

One ``Catalog`` wraps one SQLAlchemy engine (SQLite for the embedded store, PostgreSQL for a
server). Work happens in transactions: ``catalog.write(fn)`` runs ``fn(tx)`` in a write
transaction and retries it when a concurrent writer got in the way; ``catalog.read(fn)`` does the
same for reads. Version numbers are handed out by bumping ``collections.next_index`` inside the
committing transaction, after locking the collection row, so they are dense and unique across
processes and machines.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    LargeBinary,
    and_,
    create_engine,
    delete,
    event,
    func,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.pool import QueuePool

from cairn.catalog import _schema as s
from cairn.core import (
    COMMITTED,
    DELETED,
    LATEST,
    PENDING,
    Change,
    CollectionRecord,
    ManifestEntry,
    RunRecord,
    VersionRecord,
    index_rows,
    is_version_label,
    text_words,
    version_index,
)
from cairn.errors import (
    ArtifactNotFoundError,
    CommError,
    ConflictError,
    RunNotFoundError,
    TypeConflictError,
    UnavailableError,
    UsageError,
    ValidationError,
)

T = TypeVar("T")
_RETRIES = 12


def _now() -> float:
    return time.time()


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _sqlstate(exc: DBAPIError) -> str | None:
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return str(code) if code else None


def _is_transient(exc: DBAPIError) -> bool:
    """Lock timeouts, serialization failures and deadlocks: the transaction may simply be retried."""
    if _is_outage(exc):
        return True
    if _sqlstate(exc) in ("40001", "40P01", "55P03"):
        return True
    text = str(exc.orig).lower()
    return "database is locked" in text or "database is busy" in text


def _is_outage(exc: DBAPIError) -> bool:
    """The catalog's server is gone for now (restart, failover, not up yet)."""
    if exc.connection_invalidated:
        return True  # the server closed the connection: a new one may do
    code = _sqlstate(exc) or ""
    if code.startswith("08") or code in ("57P01", "57P02", "57P03"):
        return True  # connection exceptions; admin/crash shutdown; cannot connect now
    text = str(exc.orig).lower()
    return any(
        t in text
        for t in (
            "connection refused",
            "could not connect",
            "connection failed",  # psycopg, before any SQLSTATE exists
            "server closed the connection",
            "the database system is shutting down",
            "the database system is starting up",
            "terminating connection",
        )
    )


def _is_unique_violation(exc: IntegrityError) -> bool:
    """Two writers created the same row: a genuine race, which a retry resolves."""
    if _sqlstate(exc) == "23505":
        return True
    text = str(exc.orig).lower()
    return "unique constraint failed" in text or "primary key must be unique" in text


OUTAGE_SECONDS = 8.0  # how long one transaction waits out a catalog outage before a 503


_HOST_PORT = re.compile(r'(?:at|host) "[^"]*"(?: \([^)]*\))?(?:, port \d+)?|port \d+')
_SOCKET = re.compile(r'socket "[^"]*"')
_USER = re.compile(r'(user|role|database) "[^"]*"')


def scrub(text: str, url: str) -> str:
    """``text`` (a driver's message) without the catalog's host, port, user name or password."""
    try:
        parts = make_url(url)
        secrets = [parts.password, parts.username, parts.host, parts.port]
    except ArgumentError:
        secrets = []
    text = _HOST_PORT.sub("<catalog host>", text)
    text = _SOCKET.sub("<catalog socket>", text)
    text = _USER.sub(lambda m: f"{m.group(1)} <hidden>", text)
    for secret in secrets:
        if secret is not None and len(str(secret)) >= 2:
            text = text.replace(str(secret), "<hidden>")
    return " ".join(text.split())


class Catalog:
    """Metadata in SQL. ``url`` is any SQLAlchemy URL (``sqlite:///...``, ``postgresql+psycopg://...``)."""

    def __init__(self, url: str, *, create: bool = True) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._pid = 0
        self.dialect = url.split(":", 1)[0].split("+", 1)[0]
        from cairn.catalog._migrate import ensure_schema

        ensure_schema(self, create=create)

    @property
    def display(self) -> str:
        """The catalog as error messages name it: a SQLite file's path, or a PostgreSQL
        database's name (never its host, port or credentials)."""
        try:
            parts = make_url(self.url)
        except ArgumentError:
            return self.dialect
        if self.dialect == "sqlite":
            return str(parts.database or "(memory)")
        return f"{self.dialect} database {parts.database or ''!s}".strip()

    # -- plumbing ------------------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        if self._engine is None or self._pid != os.getpid():
            if self._engine is not None:
                self._engine.dispose(close=False)  # inherited over fork(): not ours to close
            self._engine = self._make_engine()
            self._pid = os.getpid()
        return self._engine

    def _make_engine(self) -> Engine:
        if self.dialect == "sqlite":
            # Connections are pooled (opening one and setting its pragmas costs more than most
            # transactions); the engine is rebuilt in a forked child, so none crosses fork().
            engine = create_engine(
                self.url,
                poolclass=QueuePool,
                pool_size=4,
                max_overflow=8,
                connect_args={"timeout": 60, "check_same_thread": False},
            )

            @event.listens_for(engine, "connect")
            def _on_connect(dbapi_conn: Any, _record: Any) -> None:
                dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=FULL")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.close()

            @event.listens_for(engine, "begin")
            def _on_begin(conn: Connection) -> None:
                # Writers take the lock up front, so two writers never deadlock upgrading a read
                # lock; readers use a plain (deferred) transaction and never block in WAL mode.
                write = conn.get_execution_options().get("cairn_write", False)
                conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

            return engine
        # No pre-ping (a round trip per transaction): a connection the server closed fails its
        # first statement, the pool is invalidated, and _run retries the transaction.
        return create_engine(self.url, pool_size=8, max_overflow=16, pool_use_lifo=True)

    def dispose(self) -> None:
        if self._engine is not None and self._pid == os.getpid():
            self._engine.dispose()
        self._engine = None

    def _run(self, fn: Callable[[Tx], T], write: bool) -> T:
        delay = 0.01
        started = time.monotonic()
        for attempt in range(_RETRIES):
            try:
                with self.engine.connect() as conn:
                    conn = conn.execution_options(cairn_write=write)
                    with conn.begin():
                        return fn(Tx(conn, self.dialect))
            except IntegrityError as exc:
                if not _is_unique_violation(exc):
                    # Not a race: a row it refers to is gone, or a check failed. Say so at once.
                    raise ConflictError(
                        f"the catalog refused the change: {scrub(str(exc.orig), self.url)}"
                    ) from None
                # A concurrent writer created the same row first; the retry will see it.
                if attempt == _RETRIES - 1:
                    raise ConflictError(
                        f"catalog conflict, retries exhausted: {scrub(str(exc.orig), self.url)}"
                    ) from None
            except (OperationalError, DBAPIError) as exc:
                if _is_outage(exc):
                    if time.monotonic() - started > OUTAGE_SECONDS:
                        raise UnavailableError(
                            f"the catalog ({self.display}) cannot be reached:"
                            f" {scrub(str(exc.orig), self.url)}; retry in a moment"
                        ) from None
                    time.sleep(min(0.5, 0.05 * 2**attempt))
                    continue
                if not _is_transient(exc) or attempt == _RETRIES - 1:
                    raise CommError(
                        f"catalog error ({self.display}): {scrub(str(exc.orig), self.url)}"
                    ) from None
            except SQLAlchemyError as exc:
                raise CommError(
                    f"catalog error ({self.display}): {scrub(str(exc), self.url)}"
                ) from None
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 1.0)
        raise UnavailableError(f"the catalog ({self.display}) cannot be reached; retry later")

    def write(self, fn: Callable[[Tx], T]) -> T:
        return self._run(fn, write=True)

    def read(self, fn: Callable[[Tx], T]) -> T:
        return self._run(fn, write=False)


class Tx:
    """Operations inside one transaction of the catalog."""

    def __init__(self, conn: Connection, dialect: str) -> None:
        self.conn = conn
        self.dialect = dialect

    def _insert(self, table: Any) -> Any:
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table)
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)

    def alive(self) -> Any:
        """A committed version whose TTL (if any) has not run out: what queries see. An expired
        version stays in the catalog until gc marks it deleted, but nothing shows it."""
        v = s.versions.c
        return and_(v.state == COMMITTED, or_(v.expires_at.is_(None), v.expires_at > _now()))

    def among(self, column: Any, values: Sequence[Any]) -> Any:
        """``column IN values``; on PostgreSQL one array parameter (``= ANY``), which the planner
        answers from an index, where a list of thousands of parameters is compared one by one."""
        if self.dialect == "postgresql":
            from sqlalchemy import any_, bindparam
            from sqlalchemy.dialects.postgresql import ARRAY

            return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
        return column.in_(list(values))

    def insert_ignore(self, table: Any, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert rows, skipping those whose key exists; on PostgreSQL one statement for all
        (``INSERT ... SELECT unnest(...)``), not a round trip per row."""
        if not rows:
            return
        cols = list(rows[0])
        binary = any(isinstance(table.c[c].type, LargeBinary) for c in cols)
        if self.dialect == "postgresql" and not binary:
            from sqlalchemy import bindparam
            from sqlalchemy.dialects.postgresql import ARRAY

            arrays = [
                func.unnest(bindparam(f"a{i}", [r[c] for r in rows], type_=ARRAY(table.c[c].type)))
                for i, c in enumerate(cols)
            ]
            stmt = self._insert(table).from_select(cols, select(*arrays)).on_conflict_do_nothing()
            self.conn.execute(stmt)
            return
        # Rows with blob data: batched executemany. (An array of bytea would be escaped as
        # text element by element: measured six times slower for 8,000 blobs of 4 KiB.)
        batch = 1000 if binary else 5000
        for start in range(0, len(rows), batch):
            self.conn.execute(
                self._insert(table).on_conflict_do_nothing(), list(rows[start : start + batch])
            )

    # -- projects ------------------------------------------------------------------------------

    def project_id(self, entity: str, name: str, *, create: bool) -> int | None:
        q = select(s.projects.c.id).where(s.projects.c.entity == entity, s.projects.c.name == name)
        pid = self.conn.execute(q).scalar()
        if pid is None and create:
            self.conn.execute(
                self._insert(s.projects)
                .values(entity=entity, name=name, created_at=_now())
                .on_conflict_do_nothing()
            )
            pid = self.conn.execute(q).scalar()
        return None if pid is None else int(pid)

    def projects(self, entity: str | None = None) -> list[tuple[str, str]]:
        q = select(s.projects.c.entity, s.projects.c.name).order_by(
            s.projects.c.entity, s.projects.c.name
        )
        if entity is not None:
            q = q.where(s.projects.c.entity == entity)
        return [(r[0], r[1]) for r in self.conn.execute(q)]

    # -- runs ----------------------------------------------------------------------------------

    def insert_run(self, project_id: int, run: RunRecord) -> int:
        existing = self.run_pk(project_id, run.id)
        if existing is not None:
            # Resumed (W&B's init(id=..., resume=...)): the config given now is merged into the
            # stored one, not dropped.
            values: dict[str, Any] = {"state": run.state, "finished_at": None}
            if run.config:
                stored = self.conn.execute(
                    select(s.runs.c.config).where(s.runs.c.id == existing)
                ).scalar_one()
                values["config"] = _json({**json.loads(stored), **dict(run.config)})
            self.conn.execute(update(s.runs).where(s.runs.c.id == existing).values(**values))
            return existing
        res = self.conn.execute(
            s.runs.insert().values(
                project_id=project_id,
                run_id=run.id,
                name=run.name,
                group_name=run.group,
                job_type=run.job_type,
                config=_json(dict(run.config)),
                state=run.state,
                created_at=run.created_at or _now(),
            )
        )
        pk = res.inserted_primary_key
        assert pk is not None
        return int(pk[0])

    def import_run(self, project_id: int, run: RunRecord) -> int:
        """Insert a run copied from another store as it is, unless the id exists (then nothing)."""
        existing = self.run_pk(project_id, run.id)
        if existing is not None:
            return existing
        res = self.conn.execute(
            s.runs.insert().values(
                project_id=project_id,
                run_id=run.id,
                name=run.name,
                group_name=run.group,
                job_type=run.job_type,
                config=_json(dict(run.config)),
                state=run.state,
                created_at=run.created_at or _now(),
                finished_at=run.finished_at,
            )
        )
        pk = res.inserted_primary_key
        assert pk is not None
        return int(pk[0])

    def run_pk(self, project_id: int, run_id: str) -> int | None:
        q = select(s.runs.c.id).where(s.runs.c.project_id == project_id, s.runs.c.run_id == run_id)
        pk = self.conn.execute(q).scalar()
        return None if pk is None else int(pk)

    def require_run_pk(self, project_id: int, run_id: str) -> int:
        pk = self.run_pk(project_id, run_id)
        if pk is None:
            raise RunNotFoundError(f"run {run_id!r} does not exist in this project")
        return pk

    def set_run_state(self, run_pk: int, state: str, config: Mapping[str, Any] | None) -> None:
        values: dict[str, Any] = {"state": state, "finished_at": _now()}
        if config is not None:
            values["config"] = _json(dict(config))
        self.conn.execute(update(s.runs).where(s.runs.c.id == run_pk).values(**values))

    def run_records(self, where: Any) -> list[RunRecord]:
        q = (
            select(s.runs, s.projects.c.entity, s.projects.c.name.label("project"))
            .join(s.projects, s.projects.c.id == s.runs.c.project_id)
            .where(where)
            .order_by(s.runs.c.created_at, s.runs.c.id)
        )
        return [
            RunRecord(
                id=r.run_id,
                entity=r.entity,
                project=r.project,
                name=r.name,
                group=r.group_name,
                job_type=r.job_type,
                config=json.loads(r.config),
                state=r.state,
                created_at=r.created_at,
                finished_at=r.finished_at,
            )
            for r in self.conn.execute(q)
        ]

    def run_record(self, project_id: int, run_id: str) -> RunRecord:
        found = self.run_records(and_(s.runs.c.project_id == project_id, s.runs.c.run_id == run_id))
        if not found:
            raise RunNotFoundError(f"run {run_id!r} not found")
        return found[0]

    def delete_run(self, run_pk: int) -> None:
        """Forget a run: its lineage rows go; versions it logged stay, with no creator."""
        self.conn.execute(delete(s.version_runs).where(s.version_runs.c.run_id == run_pk))
        self.conn.execute(
            update(s.versions).where(s.versions.c.created_by == run_pk).values(created_by=None)
        )
        self.conn.execute(
            update(s.staged_entries).where(s.staged_entries.c.run_id == run_pk).values(run_id=None)
        )
        self.conn.execute(delete(s.run_history).where(s.run_history.c.run_id == run_pk))
        self.conn.execute(delete(s.runs).where(s.runs.c.id == run_pk))

    # -- run history and summary (W&B's run.log / run.summary) --------------------------------

    def add_history(self, run_pk: int, rows: Sequence[tuple[int, str]]) -> None:
        """Store history rows ``(step, JSON text)``; a step logged again replaces its row."""
        if not rows:
            return
        steps = [step for step, _ in rows]
        h = s.run_history
        for start in range(0, len(steps), 500):
            chunk = steps[start : start + 500]
            self.conn.execute(delete(h).where(h.c.run_id == run_pk, h.c.step.in_(chunk)))
        last = dict(rows)
        self.conn.execute(
            h.insert(), [{"run_id": run_pk, "step": k, "row": v} for k, v in last.items()]
        )

    def set_summary(self, run_pk: int, summary: str) -> None:
        self.conn.execute(update(s.runs).where(s.runs.c.id == run_pk).values(summary=summary))

    def summary(self, run_pk: int) -> str:
        q = select(s.runs.c.summary).where(s.runs.c.id == run_pk)
        return self.conn.execute(q).scalar() or "{}"

    def history(
        self,
        run_pk: int,
        min_step: int | None = None,
        max_step: int | None = None,
        limit: int | None = None,
    ) -> list[str]:
        """History rows (JSON texts) of steps ``min_step <= step < max_step``, by step."""
        h = s.run_history
        q = select(h.c.row).where(h.c.run_id == run_pk)
        if min_step is not None:
            q = q.where(h.c.step >= min_step)
        if max_step is not None:
            q = q.where(h.c.step < max_step)
        q = q.order_by(h.c.step)
        if limit is not None:
            q = q.limit(limit)
        return [r[0] for r in self.conn.execute(q)]

    # -- collections ---------------------------------------------------------------------------

    def lock_collection(
        self, project_id: int, name: str, type_name: str, description: str | None
    ) -> tuple[int, int]:
        """Lock (creating it if needed) a collection for a commit: (id, next_index).

        Raises ``TypeConflictError`` when the name exists with another type.
        """
        c = s.collections.c
        q = select(c.id, c.type, c.next_index).where(c.project_id == project_id, c.name == name)
        row = self.conn.execute(q.with_for_update()).first()
        if row is None:
            now = _now()
            self.conn.execute(
                self._insert(s.collections)
                .values(
                    project_id=project_id,
                    name=name,
                    type=type_name,
                    description=description,
                    next_index=0,
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing()
            )
            row = self.conn.execute(q.with_for_update()).first()
            assert row is not None
        if row.type != type_name:
            raise TypeConflictError(
                f"artifact {name!r} already exists in this project with type {row.type!r},"
                f" not {type_name!r}; use type {row.type!r} or another name"
            )
        return int(row.id), int(row.next_index)

    def locate(self, entity: str, project: str, name: str) -> tuple[int | None, int | None]:
        """(project id, collection id) of ``entity/project/name`` in one query; None where absent."""
        p, c = s.projects.c, s.collections.c
        q = (
            select(p.id, c.id)
            .select_from(s.projects)
            .outerjoin(s.collections, and_(c.project_id == p.id, c.name == name))
            .where(p.entity == entity, p.name == project)
        )
        row = self.conn.execute(q).first()
        if row is None:
            return None, None
        return int(row[0]), None if row[1] is None else int(row[1])

    def collection_id(self, project_id: int, name: str) -> int | None:
        c = s.collections.c
        q = select(c.id).where(c.project_id == project_id, c.name == name)
        cid = self.conn.execute(q).scalar()
        return None if cid is None else int(cid)

    def require_collection(self, project_id: int, name: str, where: str) -> int:
        cid = self.collection_id(project_id, name)
        if cid is None:
            raise ArtifactNotFoundError(f"artifact {name!r} not found in project {where}")
        return cid

    def collection_records(
        self, project_id: int, type_name: str | None = None, name: str | None = None
    ) -> list[CollectionRecord]:
        c, v = s.collections.c, s.versions.c
        counts = (
            select(
                v.collection_id,
                func.count().label("n"),
                func.max(v.idx).label("latest_idx"),
            )
            .where(self.alive())
            .group_by(v.collection_id)
            .subquery()
        )
        q = (
            select(
                s.collections,
                s.projects.c.entity,
                s.projects.c.name.label("project"),
                counts.c.n,
                counts.c.latest_idx,
            )
            .join(s.projects, s.projects.c.id == c.project_id)
            .outerjoin(counts, counts.c.collection_id == c.id)
            .where(c.project_id == project_id)
            .order_by(c.type, c.name)
        )
        if type_name is not None:
            q = q.where(c.type == type_name)
        if name is not None:
            q = q.where(c.name == name)
        rows = list(self.conn.execute(q))
        latest = self._latest_versions({int(r.id): r.latest_idx for r in rows})
        ctags = self.collection_tag_map([int(r.id) for r in rows])
        caliases = self.collection_alias_map([int(r.id) for r in rows])
        return [
            CollectionRecord(
                id=int(r.id),
                entity=r.entity,
                project=r.project,
                name=r.name,
                type=r.type,
                description=r.description,
                version_count=int(r.n or 0),
                latest_index=latest.get(int(r.id), (None, None))[0],
                latest_size=latest.get(int(r.id), (None, None))[1],
                created_at=r.created_at,
                updated_at=r.updated_at,
                tags=tuple(ctags.get(int(r.id), ())),
                aliases=tuple(caliases.get(int(r.id), ())),
            )
            for r in rows
        ]

    def _latest_versions(self, newest: Mapping[int, int | None]) -> dict[int, tuple[int, int]]:
        """Collection id -> (index, size) of the version ``:latest`` resolves to: the one with
        the ``latest`` alias, else (an edit removed it) the newest committed one."""
        if not newest:
            return {}
        a, v = s.aliases.c, s.versions.c
        q = (
            select(a.collection_id, v.idx, v.size)
            .join(s.versions, v.id == a.version_id)
            .where(a.alias == LATEST, self.alive())
            .where(self.among(a.collection_id, list(newest)))
        )
        out = {int(r[0]): (int(r[1]), int(r[2])) for r in self.conn.execute(q)}
        rest = [(cid, idx) for cid, idx in newest.items() if cid not in out and idx is not None]
        if rest:
            q = select(v.collection_id, v.idx, v.size).where(
                self.among(v.collection_id, [cid for cid, _ in rest]),
                self.alive(),
            )
            wanted = set(rest)
            for r in self.conn.execute(q):
                if (int(r[0]), r[1]) in wanted:
                    out[int(r[0])] = (int(r[1]), int(r[2]))
        return out

    def types(self, project_id: int) -> list[str]:
        c = s.collections.c
        q = select(c.type).where(c.project_id == project_id).distinct().order_by(c.type)
        return [r[0] for r in self.conn.execute(q)]

    # -- versions ------------------------------------------------------------------------------

    def committed_with_digest(self, collection_id: int, digest: str) -> str | None:
        v = s.versions.c
        q = (
            select(v.id)
            .where(v.collection_id == collection_id, v.digest == digest, self.alive())
            .order_by(v.idx)
        )
        vid = self.conn.execute(q).scalars().first()
        return None if vid is None else str(vid)

    def insert_version(
        self,
        *,
        collection_id: int,
        state: str,
        index: int | None,
        digest: str | None,
        size: int,
        file_count: int,
        metadata: Mapping[str, Any],
        description: str | None,
        created_by: int | None,
        distributed_id: str | None = None,
        base_version_id: str | None = None,
        source_version_id: str | None = None,
        created_at: float | None = None,
    ) -> str:
        vid = uuid.uuid4().hex
        now = _now()
        self.conn.execute(
            s.versions.insert().values(
                id=vid,
                collection_id=collection_id,
                idx=index,
                state=state,
                digest=digest,
                size=size,
                file_count=file_count,
                metadata=_json(dict(metadata)),
                description=description,
                created_by=created_by,
                distributed_id=distributed_id,
                base_version_id=base_version_id,
                source_version_id=source_version_id,
                created_at=now if created_at is None else created_at,
                updated_at=now,
                committed_at=now if state == COMMITTED else None,
            )
        )
        if index is not None:
            self.bump_index(collection_id, index)
        if state == COMMITTED:
            self.index_metadata(vid, metadata, replace=False)
            self.index_words(vid, description, replace=False)
        return vid

    def index_metadata(
        self, version_id: str, metadata: Mapping[str, Any], *, replace: bool = True
    ) -> None:
        """Make the search index hold ``metadata``'s leaves for the version (see _schema.py)."""
        if replace:
            vm = s.version_metadata
            self.conn.execute(delete(vm).where(vm.c.version_id == version_id))
        rows = [
            {"version_id": version_id, "key": k, "text_value": t, "num_value": n}
            for k, t, n in index_rows(metadata)
        ]
        if rows:
            self.conn.execute(s.version_metadata.insert(), rows)

    def index_words(
        self, version_id: str, description: str | None, *, replace: bool = True
    ) -> None:
        """Make the search index hold the words of the version's description (see _schema.py)."""
        if replace:
            vw = s.version_words
            self.conn.execute(delete(vw).where(vw.c.version_id == version_id))
        rows = [{"word": w, "version_id": version_id} for w in text_words(description)]
        if rows:
            self.conn.execute(s.version_words.insert(), rows)

    def index_used(self, collection_id: int, index: int) -> bool:
        """Whether the collection ever gave out number ``index`` (deleted versions keep theirs)."""
        v = s.versions.c
        q = select(v.id).where(v.collection_id == collection_id, v.idx == index)
        return self.conn.execute(q).first() is not None

    def insert_imported_version(
        self,
        *,
        collection_id: int,
        index: int,
        digest: str,
        size: int,
        file_count: int,
        metadata: Mapping[str, Any],
        description: str | None,
        created_by: int | None,
        base_version_id: str | None,
        created_at: float,
        source_version_id: str | None = None,
    ) -> str:
        """A COMMITTED version copied from another store: its number and creation time are kept
        (the number must be free: ``index_used``); ``next_index`` stays above every number."""
        return self.insert_version(
            collection_id=collection_id,
            state=COMMITTED,
            index=index,
            digest=digest,
            size=size,
            file_count=file_count,
            metadata=metadata,
            description=description,
            created_by=created_by,
            base_version_id=base_version_id,
            source_version_id=source_version_id,
            created_at=created_at,
        )

    def bump_index(self, collection_id: int, used: int) -> None:
        """Keep ``next_index`` above ``used`` (never lowered: an imported version may carry an
        older number than the collection's newest)."""
        c = s.collections.c
        self.conn.execute(
            update(s.collections)
            .where(c.id == collection_id, c.next_index <= used)
            .values(next_index=used + 1, updated_at=_now())
        )

    def commit_pending(
        self,
        version_id: str,
        *,
        index: int,
        digest: str,
        size: int,
        file_count: int,
        created_by: int | None,
        metadata: Mapping[str, Any] | None,
        description: str | None,
    ) -> None:
        values: dict[str, Any] = {
            "idx": index,
            "state": COMMITTED,
            "digest": digest,
            "size": size,
            "file_count": file_count,
            "created_by": created_by,
            "committed_at": _now(),
            "updated_at": _now(),
        }
        if metadata is not None:
            values["metadata"] = _json(dict(metadata))
        if description is not None:
            values["description"] = description
        self.conn.execute(update(s.versions).where(s.versions.c.id == version_id).values(**values))
        row = self.conn.execute(
            select(
                s.versions.c.collection_id, s.versions.c.metadata, s.versions.c.description
            ).where(s.versions.c.id == version_id)
        ).one()
        self.bump_index(int(row.collection_id), index)
        self.index_metadata(version_id, json.loads(row.metadata))
        self.index_words(version_id, row.description)
        self.conn.execute(
            delete(s.staged_entries).where(s.staged_entries.c.version_id == version_id)
        )

    def set_version_state(self, version_id: str, state: str) -> None:
        v = s.versions.c
        self.conn.execute(
            update(s.versions).where(v.id == version_id).values(state=state, updated_at=_now())
        )

    def update_version(
        self,
        version_id: str,
        *,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        values: dict[str, Any] = {"updated_at": _now()}
        if description is not None:
            values["description"] = description
        if metadata is not None:
            values["metadata"] = _json(dict(metadata))
        self.conn.execute(update(s.versions).where(s.versions.c.id == version_id).values(**values))
        if metadata is not None:
            self.index_metadata(version_id, metadata)
        if description is not None:
            self.index_words(version_id, description)

    def resolve(self, collection_id: int, label: str | None) -> str | None:
        """The committed version a label names: ``None``/``latest``, ``vN`` or an alias."""
        v = s.versions.c
        if label is not None and is_version_label(label):
            q = select(v.id).where(
                v.collection_id == collection_id,
                v.idx == version_index(label),
                self.alive(),
            )
            vid = self.conn.execute(q).scalar()
            return None if vid is None else str(vid)
        a = s.aliases.c
        q = (
            select(a.version_id)
            .join(s.versions, v.id == a.version_id)
            .where(a.collection_id == collection_id, a.alias == (label or LATEST))
            .where(self.alive())
        )
        vid = self.conn.execute(q).scalar()
        if vid is None and (label or LATEST) == LATEST:
            # No "latest" alias (an edit removed it): the newest committed version, as in W&B.
            vid = self.newest_committed(collection_id)
        return None if vid is None else str(vid)

    def newest_committed(self, collection_id: int) -> str | None:
        v = s.versions.c
        q = (
            select(v.id)
            .where(v.collection_id == collection_id, self.alive())
            .order_by(v.idx.desc())
            .limit(1)
        )
        vid = self.conn.execute(q).scalar()
        return None if vid is None else str(vid)

    def version_ids(
        self, collection_id: int, *, include_pending: bool = False, include_deleted: bool = False
    ) -> list[str]:
        v = s.versions.c
        states = (
            [COMMITTED]
            + ([PENDING] if include_pending else [])
            + ([DELETED] if include_deleted else [])
        )
        q = (
            select(v.id)
            .where(v.collection_id == collection_id, v.state.in_(states))
            .where(or_(v.state != COMMITTED, self.alive()) if not include_deleted else true())
            .order_by(v.idx.is_(None), v.idx, v.created_at)
        )
        return [str(r[0]) for r in self.conn.execute(q)]

    def pending_version(self, collection_id: int, distributed_id: str) -> str | None:
        v = s.versions.c
        q = select(v.id).where(
            v.collection_id == collection_id,
            v.distributed_id == distributed_id,
            v.state == PENDING,
        )
        vid = self.conn.execute(q.with_for_update()).scalar()
        return None if vid is None else str(vid)

    def last_committed_distributed(self, collection_id: int, distributed_id: str) -> str | None:
        """The newest committed version that ``distributed_id`` built, if any."""
        v = s.versions.c
        q = (
            select(v.id)
            .where(
                v.collection_id == collection_id,
                v.distributed_id == distributed_id,
                self.alive(),
            )
            .order_by(v.idx.desc())
            .limit(1)
        )
        vid = self.conn.execute(q).scalar()
        return None if vid is None else str(vid)

    def pending_older_than(self, cutoff: float) -> list[str]:
        v = s.versions.c
        q = select(v.id).where(v.state == PENDING, v.updated_at < cutoff)
        return [str(r[0]) for r in self.conn.execute(q)]

    def version_records(self, ids: Sequence[str]) -> list[VersionRecord]:
        if not ids:
            return []
        v, c, p = s.versions.c, s.collections.c, s.projects.c
        # Aliases and tags come in the same query (one round trip, not three): names cannot hold
        # a newline, so it separates them.
        alias_list = (
            select(func.aggregate_strings(s.aliases.c.alias, "\n"))
            .where(s.aliases.c.version_id == v.id)
            .scalar_subquery()
        )
        tag_list = (
            select(func.aggregate_strings(s.tags.c.tag, "\n"))
            .where(s.tags.c.version_id == v.id)
            .scalar_subquery()
        )
        q = (
            select(
                s.versions,
                c.name.label("cname"),
                c.type,
                p.entity,
                p.name.label("project"),
                s.runs.c.run_id.label("creator"),
                alias_list.label("alias_list"),
                tag_list.label("tag_list"),
            )
            .join(s.collections, c.id == v.collection_id)
            .join(s.projects, p.id == c.project_id)
            .outerjoin(s.runs, s.runs.c.id == v.created_by)
            .where(self.among(v.id, list(ids)))
        )
        rows = {str(r.id): r for r in self.conn.execute(q)}
        alias_map = {
            vid: sorted(r.alias_list.split("\n")) for vid, r in rows.items() if r.alias_list
        }
        tag_map = {vid: sorted(r.tag_list.split("\n")) for vid, r in rows.items() if r.tag_list}
        now = _now()
        out = []
        for vid in ids:
            r = rows.get(vid)
            if r is None:
                raise ArtifactNotFoundError(f"artifact version {vid!r} not found")
            aliases = alias_map.get(vid, [])
            state = r.state
            if state == COMMITTED and r.expires_at is not None and r.expires_at <= now:
                state, aliases = DELETED, []  # expired: gone for every reader
            # "latest" first, then the rest in name order, as W&B shows them.
            aliases.sort(key=lambda a: (a != LATEST, a))
            out.append(
                VersionRecord(
                    id=vid,
                    entity=r.entity,
                    project=r.project,
                    name=r.cname,
                    type=r.type,
                    index=r.idx,
                    state=state,
                    digest=r.digest,
                    size=int(r.size),
                    file_count=int(r.file_count),
                    metadata=json.loads(r.metadata),
                    description=r.description,
                    aliases=tuple(aliases),
                    tags=tuple(tag_map.get(vid, [])),
                    created_at=r.created_at,
                    updated_at=r.updated_at,
                    created_by=r.creator,
                    distributed_id=r.distributed_id,
                    base_version_id=r.base_version_id,
                    collection_id=int(r.collection_id),
                    ttl_seconds=None if r.ttl_seconds is None else float(r.ttl_seconds),
                    source_version_id=r.source_version_id,
                )
            )
        return out

    def version_record(self, version_id: str) -> VersionRecord:
        return self.version_records([version_id])[0]

    # -- aliases and tags ------------------------------------------------------------------------

    def set_alias(self, collection_id: int, alias: str, version_id: str) -> None:
        """Point ``alias`` at ``version_id`` (moving it from another version of the collection)."""
        ins = self._insert(s.aliases).values(
            collection_id=collection_id, alias=alias, version_id=version_id
        )
        self.conn.execute(
            ins.on_conflict_do_update(
                index_elements=["collection_id", "alias"], set_={"version_id": version_id}
            )
        )

    def remove_alias(self, collection_id: int, alias: str, version_id: str | None = None) -> bool:
        a = s.aliases.c
        stmt = delete(s.aliases).where(a.collection_id == collection_id, a.alias == alias)
        if version_id is not None:
            stmt = stmt.where(a.version_id == version_id)
        return bool(self.conn.execute(stmt).rowcount)

    def aliases_of(self, version_id: str) -> list[str]:
        a = s.aliases.c
        return [r[0] for r in self.conn.execute(select(a.alias).where(a.version_id == version_id))]

    def replace_aliases(self, collection_id: int, version_id: str, aliases: Iterable[str]) -> None:
        """Make ``aliases`` exactly the version's aliases (``latest`` included: a list without
        it takes ``latest`` off the version, as in W&B)."""
        wanted = set(aliases)
        for alias in self.aliases_of(version_id):
            if alias not in wanted:
                self.remove_alias(collection_id, alias, version_id)
        for alias in sorted(wanted):
            self.set_alias(collection_id, alias, version_id)

    def move_latest(self, collection_id: int) -> None:
        """Point ``latest`` at the highest committed version (or drop it if none is left)."""
        top = self.newest_committed(collection_id)
        if top is None:
            self.remove_alias(collection_id, LATEST)
        else:
            self.set_alias(collection_id, LATEST, str(top))

    def add_tags(self, version_id: str, tags: Iterable[str]) -> None:
        for tag in tags:
            self.conn.execute(
                self._insert(s.tags).values(version_id=version_id, tag=tag).on_conflict_do_nothing()
            )

    def replace_tags(self, version_id: str, tags: Iterable[str]) -> None:
        self.conn.execute(delete(s.tags).where(s.tags.c.version_id == version_id))
        self.add_tags(version_id, tags)

    # -- time to live (W&B's Artifact.ttl) -------------------------------------------------------

    def set_ttl(
        self, version_id: str, ttl_seconds: float | None, start: float | None = None
    ) -> None:
        """Give a version a TTL from its commit time, or from ``start`` (None: no TTL)."""
        v = s.versions.c
        row = self.conn.execute(
            select(v.committed_at, v.created_at).where(v.id == version_id)
        ).first()
        if row is None:
            raise ArtifactNotFoundError(f"artifact version {version_id!r} not found")
        if start is None:
            start = row.committed_at or row.created_at
        expires = None if ttl_seconds is None else start + ttl_seconds
        self.conn.execute(
            update(s.versions)
            .where(v.id == version_id)
            .values(ttl_seconds=ttl_seconds, expires_at=expires, updated_at=_now())
        )

    def expired_versions(self) -> list[str]:
        v = s.versions.c
        q = select(v.id).where(v.state == COMMITTED, v.expires_at.is_not(None))
        return [str(r[0]) for r in self.conn.execute(q.where(v.expires_at <= _now()))]

    # -- collections as W&B edits them: tags, rename, delete ---------------------------------------

    def collection_tag_map(self, collection_ids: Sequence[int]) -> dict[int, list[str]]:
        if not collection_ids:
            return {}
        ct = s.collection_tags.c
        q = select(ct.collection_id, ct.tag).where(self.among(ct.collection_id, collection_ids))
        out: dict[int, list[str]] = {}
        for cid, tag in self.conn.execute(q.order_by(ct.tag)):
            out.setdefault(int(cid), []).append(str(tag))
        return out

    def collection_alias_map(self, collection_ids: Sequence[int]) -> dict[int, list[str]]:
        """Every alias in use in each collection, ``latest`` first, then by name."""
        if not collection_ids:
            return {}
        a = s.aliases.c
        q = select(a.collection_id, a.alias).where(self.among(a.collection_id, collection_ids))
        out: dict[int, list[str]] = {}
        for cid, alias in self.conn.execute(q):
            out.setdefault(int(cid), []).append(str(alias))
        for names in out.values():
            names.sort(key=lambda n: (n != LATEST, n))
        return out

    def set_collection_tags(self, collection_id: int, tags: Iterable[str]) -> None:
        ct = s.collection_tags.c
        self.conn.execute(delete(s.collection_tags).where(ct.collection_id == collection_id))
        rows = [{"collection_id": collection_id, "tag": t} for t in dict.fromkeys(tags)]
        if rows:
            self.conn.execute(s.collection_tags.insert(), rows)

    def update_collection(
        self, collection_id: int, *, name: str | None = None, description: str | None = None
    ) -> None:
        c = s.collections.c
        values: dict[str, Any] = {"updated_at": _now()}
        if name is not None:
            pid = self.conn.execute(select(c.project_id).where(c.id == collection_id)).scalar_one()
            other = self.collection_id(int(pid), name)
            if other is not None and other != collection_id:
                raise ValidationError(
                    f"an artifact named {name!r} already exists in this project; choose another"
                    " name"
                )
            values["name"] = name
        if description is not None:
            values["description"] = description
        self.conn.execute(update(s.collections).where(c.id == collection_id).values(**values))

    def delete_collection(self, collection_id: int) -> None:
        """Remove a collection, its versions and everything attached to them. Refused while
        one of its versions is linked into another collection (a registry)."""
        v = s.versions.c
        ids = select(v.id).where(v.collection_id == collection_id)
        links = self.links_to(ids)
        if links:
            raise UsageError(
                f"a version of this artifact is linked to {links[0]}; unlink it first"
                " (artifact.unlink() on the linked version)"
            )
        for table in (
            s.staged_entries,
            s.version_runs,
            s.tags,
            s.version_metadata,
            s.version_words,
        ):
            self.conn.execute(delete(table).where(table.c.version_id.in_(ids)))
        self.conn.execute(delete(s.aliases).where(s.aliases.c.collection_id == collection_id))
        self.conn.execute(delete(s.versions).where(v.collection_id == collection_id))
        self.conn.execute(
            delete(s.collection_tags).where(s.collection_tags.c.collection_id == collection_id)
        )
        self.conn.execute(delete(s.collections).where(s.collections.c.id == collection_id))

    # -- registry links and registries (W&B's link_artifact, Registry) ---------------------------

    def links_to(self, source_ids: Any) -> list[str]:
        """``entity/project/name:vN`` of the live links whose source is among ``source_ids``
        (a list or a subquery)."""
        v, c, p = s.versions.c, s.collections.c, s.projects.c
        cond = v.source_version_id.in_(source_ids)
        q = (
            select(p.entity, p.name, c.name, v.idx)
            .join(s.collections, c.id == v.collection_id)
            .join(s.projects, p.id == c.project_id)
            .where(cond, v.state == COMMITTED)
            .order_by(p.entity, p.name, c.name, v.idx)
        )
        return [f"{r[0]}/{r[1]}/{r[2]}:v{r[3]}" for r in self.conn.execute(q)]

    def link_of(self, collection_id: int, source_version_id: str) -> str | None:
        v = s.versions.c
        q = select(v.id).where(
            v.collection_id == collection_id,
            v.source_version_id == source_version_id,
            v.state == COMMITTED,
        )
        vid = self.conn.execute(q).scalar()
        return None if vid is None else str(vid)

    def create_registry(
        self,
        project_id: int,
        description: str | None,
        visibility: str,
        artifact_types: Sequence[str],
    ) -> None:
        self.conn.execute(
            self._insert(s.registries)
            .values(
                project_id=project_id,
                description=description,
                visibility=visibility,
                artifact_types=_json(list(artifact_types)),
                created_at=_now(),
            )
            .on_conflict_do_nothing()
        )

    def registry_rows(self, project_name: str | None = None) -> list[Any]:
        r, p = s.registries.c, s.projects.c
        q = (
            select(p.entity, p.name, r.description, r.visibility, r.artifact_types, r.created_at)
            .join(s.projects, p.id == r.project_id)
            .order_by(p.name)
        )
        if project_name is not None:
            q = q.where(p.name == project_name)
        return list(self.conn.execute(q))

    # -- lineage -------------------------------------------------------------------------------

    def link_run(self, version_id: str, run_pk: int, role: str) -> None:
        self.conn.execute(
            self._insert(s.version_runs)
            .values(version_id=version_id, run_id=run_pk, role=role, created_at=_now())
            .on_conflict_do_nothing()
        )

    def copy_links(self, src_version: str, dst_version: str, role: str) -> None:
        vr = s.version_runs.c
        q = select(vr.run_id).where(vr.version_id == src_version, vr.role == role)
        for (run_pk,) in list(self.conn.execute(q)):
            self.link_run(dst_version, int(run_pk), role)

    def runs_of(self, version_id: str, role: str) -> list[RunRecord]:
        vr = s.version_runs.c
        sub = select(vr.run_id).where(vr.version_id == version_id, vr.role == role)
        return self.run_records(s.runs.c.id.in_(sub))

    def versions_of_run(self, run_pk: int, role: str) -> list[str]:
        vr, v = s.version_runs.c, s.versions.c
        q = (
            select(vr.version_id)
            .join(s.versions, v.id == vr.version_id)
            .where(vr.run_id == run_pk, vr.role == role, v.state != DELETED)
            .where(or_(v.state != COMMITTED, self.alive()))
            .order_by(vr.created_at)
        )
        return [str(r[0]) for r in self.conn.execute(q)]

    # -- staged entries (distributed versions) ---------------------------------------------------

    def stage_changes(self, version_id: str, changes: Sequence[Change], run_pk: int | None) -> None:
        """Upsert changes into a pending version: the last one staged for a path wins."""
        if not changes:
            return
        now = _now()
        rows = []
        for path, e in changes:
            rows.append(
                {
                    "version_id": version_id,
                    "path": path,
                    "removed": 1 if e is None else 0,
                    "digest": "" if e is None else e.digest,
                    "size": None if e is None else e.size,
                    "ref": None if e is None else e.ref,
                    "extra": None if e is None or not e.extra else _json(dict(e.extra)),
                    "run_id": run_pk,
                    "staged_at": now,
                }
            )
        ins = self._insert(s.staged_entries)
        stmt = ins.on_conflict_do_update(
            index_elements=["version_id", "path"],
            set_={
                col: getattr(ins.excluded, col)
                for col in ("removed", "digest", "size", "ref", "extra", "run_id", "staged_at")
            },
        )
        self.conn.execute(stmt, rows)
        self.conn.execute(
            update(s.versions).where(s.versions.c.id == version_id).values(updated_at=now)
        )

    def add_pending_aliases(self, version_id: str, aliases: Sequence[str]) -> None:
        """Remember aliases an upsert asked for; they are set when the version commits."""
        if not aliases:
            return
        v = s.versions.c
        raw = self.conn.execute(select(v.pending_aliases).where(v.id == version_id)).scalar()
        merged = list(dict.fromkeys([*(json.loads(raw) if raw else []), *aliases]))
        self.conn.execute(
            update(s.versions).where(v.id == version_id).values(pending_aliases=_json(merged))
        )

    def pending_aliases(self, version_id: str) -> list[str]:
        v = s.versions.c
        raw = self.conn.execute(select(v.pending_aliases).where(v.id == version_id)).scalar()
        return list(json.loads(raw)) if raw else []

    def staged(self, version_id: str) -> list[Change]:
        """The staged changes of a pending version, sorted by path."""
        se = s.staged_entries.c
        q = select(se.path, se.removed, se.digest, se.size, se.ref, se.extra).where(
            se.version_id == version_id
        )
        out: list[Change] = [
            (
                r[0],
                None
                if r[1]
                else ManifestEntry(r[0], r[2], r[3], r[4], json.loads(r[5]) if r[5] else None),
            )
            for r in self.conn.execute(q)
        ]
        out.sort(key=lambda c: c[0])
        return out

    def staged_count(self, version_id: str) -> int:
        se = s.staged_entries.c
        q = select(func.count()).select_from(s.staged_entries).where(se.version_id == version_id)
        return int(self.conn.execute(q).scalar_one())

    def drop_pending(self, version_id: str) -> None:
        """Forget a PENDING version and its staged changes."""
        state = self.conn.execute(
            select(s.versions.c.state).where(s.versions.c.id == version_id)
        ).scalar()
        if state is None:
            raise ArtifactNotFoundError(f"artifact version {version_id!r} not found")
        if state != PENDING:
            raise UsageError(
                f"version {version_id} is {state}, not PENDING; it cannot be discarded"
            )
        for table in (
            s.staged_entries,
            s.version_runs,
            s.tags,
            s.aliases,
            s.version_metadata,
            s.version_words,
        ):
            self.conn.execute(delete(table).where(table.c.version_id == version_id))
        self.conn.execute(delete(s.versions).where(s.versions.c.id == version_id))

    # -- blob ownership (servers) -----------------------------------------------------------------

    def grant_blobs(self, project_id: int, digests: Iterable[str]) -> None:
        """Record that the project's versions refer to these blobs (so its readers may read them)."""
        rows = [{"project_id": project_id, "digest": d} for d in dict.fromkeys(digests)]
        self.insert_ignore(s.project_blobs, rows)

    # -- garbage collection support ----------------------------------------------------------------

    def live_roots(self) -> list[str]:
        """Manifest roots of every version not deleted."""
        v = s.versions.c
        q = select(v.digest).where(self.alive(), v.digest.is_not(None)).distinct()
        return [str(r[0]) for r in self.conn.execute(q)]

    def staged_digests(self) -> list[str]:
        se = s.staged_entries.c
        q = select(se.digest).where(se.ref.is_(None), se.removed == 0).distinct()
        return [str(r[0]) for r in self.conn.execute(q)]
