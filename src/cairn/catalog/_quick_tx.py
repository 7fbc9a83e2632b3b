"""A catalog transaction on a plain ``sqlite3`` connection: the few repository methods a re-log
needs, without SQLAlchemy (issue 13: importing it was half of re-logging an unchanged
directory from a new process).

``QuickTx`` offers the repositories of ``Tx`` that a run's start and finish and a log's commit
use, whether it finds the identical version or makes the next one of the collection (a re-log
with one file changed must cost no more than an unchanged one): ``projects.id_of`` (making
the project), ``runs.insert`` (a new run), ``runs.record``, ``runs.set_state``,
``collections.lock`` (making the collection), ``versions.committed_with_digest``,
``versions.insert`` (a committed version, with its search index rows, or a distributed id's
pending one), ``versions.record``, ``versions.named`` (a resolve: ``cairn artifact get``),
``aliases.assign``, ``tags.add`` and ``lineage.add``; and
what a distributed version's writers' upserts and its finish take (``QuickPending``: eight
processes that upsert at once must not each import SQLAlchemy). Each does exactly what the
SQLAlchemy method does, or raises ``NeedsCatalog`` where that method would do more: resume a
run, set a pending version's metadata, refuse something (not found, another type). So does
every other attribute. ``EmbeddedCatalog`` then rolls the transaction back and runs the same
function again on the full ``Catalog``: no rule is decided here (the service's functions
decide, over either transaction), and the slow path is always the full one.
``tests/service/test_embedded_catalog.py`` compares the catalog after each operation, run both
ways on fresh stores.

Every statement is the repository's own (``_statements.py``), compiled to SQLite's text in the
generated ``_quick_sql.py``, with the rows and records made by ``_rows.py`` for both: one source,
so the two cannot drift (``tests/catalog/test_quick_sql.py`` fails when the generated text is
stale); what is left here is only the choice of what the quick path takes on.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NoReturn

from cairn.catalog import _quick_sql as q
from cairn.catalog._quick import bound
from cairn.catalog._repository import now, to_json
from cairn.catalog._rows import (
    bump_index_row,
    collection_row,
    metadata_rows,
    new_version_id,
    run_record,
    run_row,
    run_state,
    staged_change,
    staged_rows,
    version_record,
    version_row,
    word_rows,
)
from cairn.core import (
    COMMITTED,
    LATEST,
    PENDING,
    Change,
    RunRecord,
    VersionRecord,
    is_version_label,
    version_index,
)


class NeedsCatalog(Exception):
    """What a quick transaction cannot do: the full catalog must run it."""


class _Quick:
    """A repository of ``QuickTx``: anything it does not define needs the full catalog."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __getattr__(self, name: str) -> NoReturn:
        if name.startswith("__"):
            raise AttributeError(name)
        raise NeedsCatalog(f"{type(self).__name__}.{name}")


class QuickProjects(_Quick):
    def id_of(self, entity: str, name: str, *, create: bool) -> int | None:
        key = {"entity": entity, "name": name}
        row = self._db.execute(q.PROJECT_ID, key).fetchone()
        if row is None and create:
            self._db.execute(q.PROJECT_CREATE, {**key, "created_at": now()})
            row = self._db.execute(q.PROJECT_ID, key).fetchone()
        return None if row is None else int(row[0])


class QuickRuns(_Quick):
    def insert(self, project_id: int, run: RunRecord) -> int:
        if self.pk(project_id, run.id) is not None:
            raise NeedsCatalog("a resumed run")  # its config is merged: Runs.insert's rule
        cur = self._db.execute(q.RUN_INSERT, run_row(project_id, run, at=now(), finished_at=None))
        assert cur.lastrowid is not None
        return int(cur.lastrowid)

    def pk(self, project_id: int, run_id: str) -> int | None:
        row = self._db.execute(q.RUN_PK, {"project_id": project_id, "run_id": run_id}).fetchone()
        return None if row is None else int(row[0])

    def require_pk(self, project_id: int, run_id: str) -> int:
        pk = self.pk(project_id, run_id)
        if pk is None:
            raise NeedsCatalog("no such run")
        return pk

    def set_state(self, run_pk: int, state: str, config: Mapping[str, Any] | None) -> None:
        sql = q.RUN_STATE if config is None else q.RUN_STATE_CONFIG
        self._db.execute(sql, run_state(run_pk, state, config, at=now()))

    def record(self, project_id: int, run_id: str) -> RunRecord:
        row = self._db.execute(
            q.RUN_RECORD, {"project_id": project_id, "run_id": run_id}
        ).fetchone()
        if row is None:
            raise NeedsCatalog("no such run")
        return run_record(dict(zip(q.RUN_RECORD_COLUMNS.split(","), row, strict=True)))


class QuickCollections(_Quick):
    def id_of(self, project_id: int, name: str) -> int | None:
        row = self._db.execute(q.COLLECTION_ID, {"project_id": project_id, "name": name}).fetchone()
        return None if row is None else int(row[0])

    def lock(
        self, project_id: int, name: str, type_name: str, description: str | None
    ) -> tuple[int, int]:
        # SQLite has no row locks: the transaction's write lock (BEGIN IMMEDIATE) is the lock.
        key = {"project_id": project_id, "name": name}
        row = self._db.execute(q.COLLECTION_LOCK, key).fetchone()
        if row is None:
            new = collection_row(project_id, name, type_name, description, at=now())
            self._db.execute(q.COLLECTION_CREATE, new)
            row = self._db.execute(q.COLLECTION_LOCK, key).fetchone()
        if row is None or row[1] != type_name:
            raise NeedsCatalog("another type")  # Collections.lock's error
        return int(row[0]), int(row[2])


# What VERSION_WITH_DIGEST binds itself (the committed state of ``_ttl.alive``).
_VERSION_BOUND = bound(q.VERSION_WITH_DIGEST_PARAMS)
_BY_ALIAS_BOUND = bound(q.RECORD_BY_ALIAS_PARAMS)
_BY_INDEX_BOUND = bound(q.RECORD_BY_INDEX_PARAMS)


class QuickVersions(_Quick):
    def insert(
        self,
        *,
        state: str,
        index: int | None,
        distributed_id: str | None = None,
        source_version_id: str | None = None,
        created_at: float | None = None,
        **fields: Any,
    ) -> str:
        """A committed version numbered by its collection (``Collections.lock``), as one commit
        makes it, or the pending version of a distributed id (no number, not indexed yet: its
        first writer's upsert); imported and linked versions are the full catalog's."""
        if created_at is not None or source_version_id is not None:
            raise NeedsCatalog("an imported version or a link")
        pending = state == PENDING and index is None and distributed_id is not None
        if not pending and (state != COMMITTED or index is None or distributed_id is not None):
            raise NeedsCatalog("another kind of version")
        vid = new_version_id()
        row = version_row(
            vid=vid, at=now(), state=state, index=index, distributed_id=distributed_id, **fields
        )
        self._db.execute(q.VERSION_INSERT, row)
        if pending:
            return vid
        assert index is not None
        # Versions.bump_index, index_metadata and index_words (replace=False): the same rows.
        self._db.execute(q.BUMP_INDEX, bump_index_row(fields["collection_id"], index, at=now()))
        self._db.executemany(q.METADATA_INSERT, metadata_rows(vid, fields["metadata"]))
        self._db.executemany(q.WORDS_INSERT, word_rows(vid, fields["description"]))
        return vid

    def committed_with_digest(self, collection_id: int, digest: str) -> str | None:
        key = {"collection_id": collection_id, "digest": digest, "now": now(), **_VERSION_BOUND}
        row = self._db.execute(q.VERSION_WITH_DIGEST, key).fetchone()
        return None if row is None else str(row[0])

    def named(
        self, entity: str, project: str, name: str, label: str | None
    ) -> VersionRecord | None:
        """``Versions.named``: a resolve in one statement (None: the full catalog says why)."""
        at = now()
        key = {"entity": entity, "project": project, "name": name, "now": at}
        if label is not None and is_version_label(label):
            sql, columns = q.RECORD_BY_INDEX, q.RECORD_BY_INDEX_COLUMNS
            key |= _BY_INDEX_BOUND | {"idx": version_index(label)}
        else:
            sql, columns = q.RECORD_BY_ALIAS, q.RECORD_BY_ALIAS_COLUMNS
            key |= _BY_ALIAS_BOUND | {"alias": label or LATEST}
        row = self._db.execute(sql, key).fetchone()
        if row is None:
            return None
        return version_record(dict(zip(columns.split(","), row, strict=True)), at)

    def record(self, version_id: str) -> VersionRecord:
        row = self._db.execute(q.VERSION_RECORD, {"vid": version_id}).fetchone()
        if row is None:
            raise NeedsCatalog("no such version")
        columns = q.VERSION_RECORD_COLUMNS.split(",")
        return version_record(dict(zip(columns, row, strict=True)), now())


class QuickAliases(_Quick):
    def assign(self, collection_id: int, alias: str, version_id: str) -> None:
        row = {"collection_id": collection_id, "alias": alias, "version_id": version_id}
        self._db.execute(q.ALIAS_ASSIGN, row)


class QuickTags(_Quick):
    def add(self, version_id: str, tags: Iterable[str]) -> None:
        for tag in tags:
            self._db.execute(q.TAG_ADD, {"version_id": version_id, "tag": tag})


class QuickLineage(_Quick):
    def add(self, version_id: str, run_pk: int, role: str) -> None:
        row = {"version_id": version_id, "run_id": run_pk, "role": role, "created_at": now()}
        self._db.execute(q.LINEAGE_ADD, row)


_PENDING_BOUND = bound(q.PENDING_FIND_PARAMS)


class QuickPending(_Quick):
    """What a distributed version's writers' upserts and its finish take: ``PendingVersions``'
    own statements, and ``NeedsCatalog`` for anything more."""

    def find(self, collection_id: int, distributed_id: str) -> str | None:
        key = {"collection_id": collection_id, "distributed_id": distributed_id, **_PENDING_BOUND}
        row = self._db.execute(q.PENDING_FIND, key).fetchone()
        return None if row is None else str(row[0])

    def stage(self, version_id: str, changes: Sequence[Change], run_pk: int | None) -> None:
        if changes:
            at = now()
            self._db.executemany(q.STAGED_UPSERT, staged_rows(version_id, changes, run_pk, at=at))
            self._db.execute(q.STAGED_BUMP, {"vid": version_id, "updated_at": at})

    def add_aliases(self, version_id: str, aliases: Sequence[str]) -> None:
        if aliases:
            merged = list(dict.fromkeys([*self.aliases(version_id), *aliases]))
            row = {"vid": version_id, "pending_aliases": to_json(merged)}
            self._db.execute(q.PENDING_ALIASES_SET, row)

    def aliases(self, version_id: str) -> list[str]:
        row = self._db.execute(q.PENDING_ALIASES, {"vid": version_id}).fetchone()
        return list(json.loads(row[0])) if row is not None and row[0] else []

    def staged_generation(self, version_id: str) -> int:
        row = self._db.execute(q.STAGED_GENERATION, {"vid": version_id}).fetchone()
        return int(row[0] or 0) if row is not None else 0

    def staged_count(self, version_id: str) -> int:
        return int(self._db.execute(q.STAGED_COUNT, {"vid": version_id}).fetchone()[0])

    def staged_batch(self, version_id: str, after: str | None, limit: int) -> list[Change]:
        sql = q.STAGED_FIRST if after is None else q.STAGED_AFTER
        rows = self._db.execute(sql, {"vid": version_id, "after": after, "n": limit, "skip": 0})
        return [staged_change(r) for r in rows]

    def commit(
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
        """``PendingVersions.commit`` of a finish that sets no metadata or description."""
        if metadata is not None or description is not None:
            raise NeedsCatalog("a finish that sets metadata or a description")
        at = now()
        values = {"idx": index, "state": COMMITTED, "digest": digest, "size": size}
        values |= {"file_count": file_count, "created_by": created_by}
        self._db.execute(
            q.PENDING_COMMIT, {"vid": version_id, **values, "committed_at": at, "updated_at": at}
        )
        row = self._db.execute(q.PENDING_ROW, {"vid": version_id}).fetchone()
        # Versions.bump_index, index_metadata and index_words (replace=True): the same rows.
        self._db.execute(q.BUMP_INDEX, bump_index_row(int(row[0]), index, at=now()))
        self._db.execute(q.METADATA_DELETE, {"vid": version_id})
        self._db.executemany(q.METADATA_INSERT, metadata_rows(version_id, json.loads(row[1])))
        self._db.execute(q.WORDS_DELETE, {"vid": version_id})
        self._db.executemany(q.WORDS_INSERT, word_rows(version_id, row[2]))
        self._db.execute(q.STAGED_DELETE, {"vid": version_id})


class QuickTx(_Quick):
    """``Tx``'s repositories that a re-log uses, over one ``sqlite3`` transaction."""

    def __init__(self, db: sqlite3.Connection) -> None:
        super().__init__(db)
        self.projects = QuickProjects(db)
        self.runs = QuickRuns(db)
        self.collections = QuickCollections(db)
        self.versions = QuickVersions(db)
        self.aliases = QuickAliases(db)
        self.tags = QuickTags(db)
        self.lineage = QuickLineage(db)
        self.pending = QuickPending(db)
