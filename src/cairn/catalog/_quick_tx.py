"""A catalog transaction on a plain ``sqlite3`` connection: the few repository methods a re-log
needs, without SQLAlchemy (issue 13: importing it was half of re-logging an unchanged
directory from a new process).

``QuickTx`` offers the repositories of ``Tx`` that a run's start and finish and a re-log's commit
use, whether it finds the identical version or makes the next one of the collection (a re-log
with one file changed must cost no more than an unchanged one): ``projects.id_of``,
``runs.insert`` (a new run), ``runs.record``, ``runs.set_state``, ``collections.lock``,
``versions.committed_with_digest``, ``versions.insert`` (a committed version of an existing
collection, with its search index rows), ``versions.record``, ``aliases.assign``, ``tags.add``
and ``lineage.add``. Each does exactly what
the SQLAlchemy method does (the same SQL, the same rows, the same records), or raises
``NeedsCatalog`` where that method would do more: create a project or a collection, resume a
run, refuse something (not found, another type), see a version with a TTL. So does every other
attribute. ``EmbeddedCatalog`` then rolls the transaction back and runs the same function again
on the full ``Catalog``: no rule is decided here (the service's functions decide, over either
transaction), and the slow path is always the full one. ``tests/catalog/test_quick_tx.py``
compares the catalog after each operation, run both ways on fresh stores.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

from cairn.catalog._repository import now, to_json
from cairn.core import COMMITTED, LATEST, RunRecord, VersionRecord, index_rows, text_words


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
        row = self._db.execute(
            "SELECT id FROM projects WHERE entity = ? AND name = ?", (entity, name)
        ).fetchone()
        if row is None:
            if create:
                raise NeedsCatalog("a new project")
            return None
        return int(row[0])


_RUN = (
    "SELECT r.run_id, p.entity, p.name, r.name, r.group_name, r.job_type, r.config, r.state,"
    " r.created_at, r.finished_at FROM runs r JOIN projects p ON p.id = r.project_id"
)


class QuickRuns(_Quick):
    def insert(self, project_id: int, run: RunRecord) -> int:
        if self.pk(project_id, run.id) is not None:
            raise NeedsCatalog("a resumed run")  # its config is merged: Runs.insert's rule
        cur = self._db.execute(
            "INSERT INTO runs (project_id, run_id, name, group_name, job_type, config, state,"
            " created_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
            (
                project_id,
                run.id,
                run.name,
                run.group,
                run.job_type,
                to_json(dict(run.config)),
                run.state,
                run.created_at or now(),
            ),
        )
        assert cur.lastrowid is not None
        return int(cur.lastrowid)

    def pk(self, project_id: int, run_id: str) -> int | None:
        row = self._db.execute(
            "SELECT id FROM runs WHERE project_id = ? AND run_id = ?", (project_id, run_id)
        ).fetchone()
        return None if row is None else int(row[0])

    def require_pk(self, project_id: int, run_id: str) -> int:
        pk = self.pk(project_id, run_id)
        if pk is None:
            raise NeedsCatalog("no such run")
        return pk

    def set_state(self, run_pk: int, state: str, config: Mapping[str, Any] | None) -> None:
        if config is None:
            self._db.execute(
                "UPDATE runs SET state = ?, finished_at = ? WHERE id = ?", (state, now(), run_pk)
            )
        else:
            self._db.execute(
                "UPDATE runs SET state = ?, finished_at = ?, config = ? WHERE id = ?",
                (state, now(), to_json(dict(config)), run_pk),
            )

    def record(self, project_id: int, run_id: str) -> RunRecord:
        row = self._db.execute(
            f"{_RUN} WHERE r.project_id = ? AND r.run_id = ?", (project_id, run_id)
        ).fetchone()
        if row is None:
            raise NeedsCatalog("no such run")
        return RunRecord(
            id=row[0],
            entity=row[1],
            project=row[2],
            name=row[3],
            group=row[4],
            job_type=row[5],
            config=json.loads(row[6]),
            state=row[7],
            created_at=row[8],
            finished_at=row[9],
        )


class QuickCollections(_Quick):
    def id_of(self, project_id: int, name: str) -> int | None:
        row = self._db.execute(
            "SELECT id FROM collections WHERE project_id = ? AND name = ?", (project_id, name)
        ).fetchone()
        return None if row is None else int(row[0])

    def lock(
        self, project_id: int, name: str, type_name: str, description: str | None
    ) -> tuple[int, int]:
        # SQLite has no row locks: the transaction's write lock (BEGIN IMMEDIATE) is the lock.
        row = self._db.execute(
            "SELECT id, type, next_index FROM collections WHERE project_id = ? AND name = ?",
            (project_id, name),
        ).fetchone()
        if row is None or row[1] != type_name:
            raise NeedsCatalog("a new collection, or another type")
        return int(row[0]), int(row[2])


_VERSION = (
    "SELECT v.id, p.entity, p.name, c.name, c.type, v.idx, v.state, v.digest, v.size,"
    " v.file_count, v.metadata, v.description, v.created_at, v.updated_at, r.run_id,"
    " v.distributed_id, v.base_version_id, v.collection_id, v.ttl_seconds,"
    " v.source_version_id, v.expires_at FROM versions v"
    " JOIN collections c ON c.id = v.collection_id JOIN projects p ON p.id = c.project_id"
    " LEFT JOIN runs r ON r.id = v.created_by WHERE v.id = ?"
)


class QuickVersions(_Quick):
    def insert(
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
        """A committed version numbered by its collection (``Collections.lock``), as one commit
        makes it; pending, imported and linked versions are the full catalog's."""
        if state != COMMITTED or index is None or created_at is not None:
            raise NeedsCatalog("a pending or an imported version")
        if distributed_id is not None or source_version_id is not None:
            raise NeedsCatalog("a distributed version or a link")
        vid = uuid.uuid4().hex
        at = now()
        self._db.execute(
            "INSERT INTO versions (id, collection_id, idx, state, digest, size, file_count,"
            " metadata, description, created_by, distributed_id, base_version_id,"
            " source_version_id, created_at, updated_at, committed_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, NULL, ?, ?, ?)",
            (
                vid,
                collection_id,
                index,
                state,
                digest,
                size,
                file_count,
                to_json(dict(metadata)),
                description,
                created_by,
                base_version_id,
                at,
                at,
                at,
            ),
        )
        # Versions.bump_index, index_metadata and index_words (replace=False): the same rows.
        self._db.execute(
            "UPDATE collections SET next_index = ?, updated_at = ? WHERE id = ? AND next_index <= ?",
            (index + 1, now(), collection_id, index),
        )
        self._db.executemany(
            "INSERT INTO version_metadata (version_id, key, text_value, num_value)"
            " VALUES (?, ?, ?, ?)",
            [(vid, k, t, n) for k, t, n in index_rows(metadata)],
        )
        self._db.executemany(
            "INSERT INTO version_words (word, version_id) VALUES (?, ?)",
            [(w, vid) for w in text_words(description)],
        )
        return vid

    def committed_with_digest(self, collection_id: int, digest: str) -> str | None:
        # The first committed version with this digest; one with a TTL is left to the full
        # catalog (what is alive is _ttl.alive()'s rule, written once).
        row = self._db.execute(
            "SELECT id, expires_at FROM versions WHERE collection_id = ? AND digest = ?"
            " AND state = ? ORDER BY idx LIMIT 1",
            (collection_id, digest, COMMITTED),
        ).fetchone()
        if row is None:
            return None
        if row[1] is not None:
            raise NeedsCatalog("a version with a TTL")
        return str(row[0])

    def record(self, version_id: str) -> VersionRecord:
        r = self._db.execute(_VERSION, (version_id,)).fetchone()
        if r is None or r[20] is not None:
            raise NeedsCatalog("no such version, or one with a TTL")
        aliases = sorted(
            str(a[0])
            for a in self._db.execute(
                "SELECT alias FROM aliases WHERE version_id = ?", (version_id,)
            )
        )
        aliases.sort(key=lambda a: (a != LATEST, a))  # as Versions.records shows them
        tags = sorted(
            str(t[0])
            for t in self._db.execute("SELECT tag FROM tags WHERE version_id = ?", (version_id,))
        )
        return VersionRecord(
            id=version_id,
            entity=r[1],
            project=r[2],
            name=r[3],
            type=r[4],
            index=r[5],
            state=r[6],
            digest=r[7],
            size=int(r[8]),
            file_count=int(r[9]),
            metadata=json.loads(r[10]),
            description=r[11],
            aliases=tuple(aliases),
            tags=tuple(tags),
            created_at=r[12],
            updated_at=r[13],
            created_by=r[14],
            distributed_id=r[15],
            base_version_id=r[16],
            collection_id=int(r[17]),
            ttl_seconds=None if r[18] is None else float(r[18]),
            source_version_id=r[19],
        )


class QuickAliases(_Quick):
    def assign(self, collection_id: int, alias: str, version_id: str) -> None:
        self._db.execute(
            "INSERT INTO aliases (collection_id, alias, version_id) VALUES (?, ?, ?)"
            " ON CONFLICT (collection_id, alias) DO UPDATE SET version_id = ?",
            (collection_id, alias, version_id, version_id),
        )


class QuickTags(_Quick):
    def add(self, version_id: str, tags: Iterable[str]) -> None:
        for tag in tags:
            self._db.execute(
                "INSERT INTO tags (version_id, tag) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (version_id, tag),
            )


class QuickLineage(_Quick):
    def add(self, version_id: str, run_pk: int, role: str) -> None:
        self._db.execute(
            "INSERT INTO version_runs (version_id, run_id, role, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (version_id, run_pk, role, now()),
        )


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
