"""Pending versions: W&B's distributed artifacts, built by several writers before one commit.

Writers sharing a ``distributed_id`` stage changes (``staged_entries``: the last change staged
for a path wins) into one PENDING version of the collection, and ask for aliases on the way; a
finish commits it with its number (``commit``) or drops it (``drop``). A pending version nobody
finishes is dropped once it is old enough (``older_than``; ``Service.cleanup_pending``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import delete, select

from cairn.catalog import _schema as s
from cairn.catalog import _statements as st
from cairn.catalog._repository import Repository, now, to_json
from cairn.catalog._rows import staged_change, staged_rows
from cairn.catalog._ttl import alive
from cairn.core import COMMITTED, PENDING, Change
from cairn.errors import ArtifactNotFoundError, UsageError


class PendingVersions(Repository):
    """PENDING rows of ``versions``, their ``pending_aliases`` and ``staged_entries``."""

    def find(self, collection_id: int, distributed_id: str) -> str | None:
        """The pending version ``distributed_id`` builds in the collection (row locked), if any."""
        key = {"collection_id": collection_id, "distributed_id": distributed_id}
        vid = self.conn.execute(st.PENDING_FIND, key).scalar()
        return None if vid is None else str(vid)

    def last_committed(self, collection_id: int, distributed_id: str) -> str | None:
        """The newest committed version that ``distributed_id`` built, if any."""
        v = s.versions.c
        q = (
            select(v.id)
            .where(
                v.collection_id == collection_id,
                v.distributed_id == distributed_id,
                alive(),
            )
            .order_by(v.idx.desc())
            .limit(1)
        )
        vid = self.conn.execute(q).scalar()
        return None if vid is None else str(vid)

    def older_than(self, cutoff: float) -> list[str]:
        """Pending versions last changed before ``cutoff``."""
        v = s.versions.c
        q = select(v.id).where(v.state == PENDING, v.updated_at < cutoff)
        return [str(r[0]) for r in self.conn.execute(q)]

    def stage(self, version_id: str, changes: Sequence[Change], run_pk: int | None) -> None:
        """Upsert changes into a pending version: the last one staged for a path wins."""
        if not changes:
            return
        at = now()
        self.conn.execute(
            st.staged_upsert(self.tx.dialect), staged_rows(version_id, changes, run_pk, at=at)
        )
        self.conn.execute(st.STAGED_BUMP, {"vid": version_id, "updated_at": at})

    def add_aliases(self, version_id: str, aliases: Sequence[str]) -> None:
        """Remember aliases an upsert asked for; they are set when the version commits."""
        if not aliases:
            return
        merged = list(dict.fromkeys([*self.aliases(version_id), *aliases]))
        row = {"vid": version_id, "pending_aliases": to_json(merged)}
        self.conn.execute(st.PENDING_ALIASES_SET, row)

    def aliases(self, version_id: str) -> list[str]:
        raw = self.conn.execute(st.PENDING_ALIASES, {"vid": version_id}).scalar()
        return list(json.loads(raw)) if raw else []

    def staged(self, version_id: str) -> list[Change]:
        """The staged changes of a pending version, sorted by path."""
        se = s.staged_entries.c
        q = select(se.path, se.removed, se.digest, se.size, se.ref, se.extra).where(
            se.version_id == version_id
        )
        out = [staged_change(r) for r in self.conn.execute(q)]
        out.sort(key=lambda c: c[0])
        return out

    def staged_batch(self, version_id: str, after: str | None, limit: int) -> list[Change]:
        """Up to ``limit`` staged changes of a pending version with paths after ``after`` (None:
        from the first), in path order: code point order, as manifests sort (PostgreSQL compares
        in the "C" collation, from its own index; SQLite compares so already)."""
        if self.tx.dialect != "postgresql":
            q = st.STAGED_FIRST if after is None else st.STAGED_AFTER
            key = {"vid": version_id, "after": after, "n": limit, "skip": 0}
            return [staged_change(r) for r in self.conn.execute(q, key)]
        se = s.staged_entries.c
        path = se.path.collate("C")
        q = select(se.path, se.removed, se.digest, se.size, se.ref, se.extra).where(
            se.version_id == version_id
        )
        if after is not None:
            q = q.where(path > after)
        return [staged_change(r) for r in self.conn.execute(q.order_by(path).limit(limit))]

    def staged_generation(self, version_id: str) -> int:
        """How many stagings a pending version had (each ``stage`` with changes adds one): equal
        numbers, equal staged changes."""
        found = self.conn.execute(st.STAGED_GENERATION, {"vid": version_id}).scalar()
        return int(found or 0)

    def staged_count(self, version_id: str) -> int:
        return int(self.conn.execute(st.STAGED_COUNT, {"vid": version_id}).scalar_one())

    def staged_digests(self, batch: int = 2_000) -> Iterator[str]:
        """Blobs that staged changes of any pending version refer to (gc keeps them): read
        ``batch`` rows at a time, version by version in path order, so memory does not grow
        with the number of staged changes (a blob staged under several paths comes once per
        path). Consume it inside the transaction."""
        v, se = s.versions.c, s.staged_entries.c
        pending = [str(r[0]) for r in self.conn.execute(select(v.id).where(v.state == PENDING))]
        for vid in pending:
            after: str | None = None
            while True:
                q = select(se.path, se.digest).where(
                    se.version_id == vid, se.ref.is_(None), se.removed == 0
                )
                if after is not None:
                    q = q.where(se.path > after)
                rows = self.conn.execute(q.order_by(se.path).limit(batch)).all()
                for _, digest in rows:
                    yield str(digest)
                if len(rows) < batch:
                    break
                after = str(rows[-1][0])

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
        """Make the pending version COMMITTED as number ``index``; its staged changes go."""
        values: dict[str, Any] = {
            "idx": index,
            "state": COMMITTED,
            "digest": digest,
            "size": size,
            "file_count": file_count,
            "created_by": created_by,
            "committed_at": now(),
            "updated_at": now(),
        }
        if metadata is not None:
            values["metadata"] = to_json(dict(metadata))
        if description is not None:
            values["description"] = description
        self.conn.execute(st.PENDING_COMMIT, {"vid": version_id, **values})
        row = self.conn.execute(st.PENDING_ROW, {"vid": version_id}).one()
        versions = self.tx.versions
        versions.bump_index(int(row.collection_id), index)
        versions.index_metadata(version_id, json.loads(row.metadata))
        versions.index_words(version_id, row.description)
        self.conn.execute(st.STAGED_DELETE, {"vid": version_id})

    def drop(self, version_id: str) -> None:
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
