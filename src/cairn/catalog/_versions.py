"""Versions: what a commit inserts, how a label resolves, and the records readers get.

A version is PENDING (a distributed version being built: ``PendingVersions``), COMMITTED, or
DELETED. Its number comes from its collection (``Collections.lock``); once given out a number
is never given again, even when its version is deleted. What a reader sees is ``alive()``
(committed, TTL not run out). Committing a version also fills the search index: the leaves of
its metadata (``version_metadata``) and the words of its description (``version_words``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, or_, select, true, update

from cairn.catalog import _schema as s
from cairn.catalog import _statements as st
from cairn.catalog._repository import Repository, now, to_json
from cairn.catalog._rows import (
    bump_index_row,
    metadata_rows,
    new_version_id,
    version_record,
    version_row,
    word_rows,
)
from cairn.catalog._ttl import alive
from cairn.core import (
    COMMITTED,
    DELETED,
    LATEST,
    PENDING,
    VersionRecord,
    is_version_label,
    version_index,
)
from cairn.errors import ArtifactNotFoundError

_v, _a, _c, _p = s.versions.c, s.aliases.c, s.collections.c, s.projects.c
# Statements a resolve runs, built once (building one costs more than running it).
# The version an alias names, if it is alive at ``now``.
_BY_ALIAS = (
    select(_a.version_id)
    .join(s.versions, _v.id == _a.version_id)
    .where(_a.collection_id == bindparam("collection_id"), _a.alias == bindparam("alias"))
    .where(alive(bindparam("now")))
)
# The version ``vN`` names, if it is alive at ``now``.
_BY_INDEX = select(_v.id).where(
    _v.collection_id == bindparam("collection_id"),
    _v.idx == bindparam("idx"),
    alive(bindparam("now")),
)


class Versions(Repository):
    """The ``versions`` table and its search index (``version_metadata``, ``version_words``)."""

    def committed_with_digest(self, collection_id: int, digest: str) -> str | None:
        key = {"collection_id": collection_id, "digest": digest, "now": now()}
        vid = self.conn.execute(st.VERSION_WITH_DIGEST, key).scalars().first()
        return None if vid is None else str(vid)

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
        vid = new_version_id()
        row = version_row(
            vid=vid,
            at=now(),
            collection_id=collection_id,
            state=state,
            index=index,
            digest=digest,
            size=size,
            file_count=file_count,
            metadata=metadata,
            description=description,
            created_by=created_by,
            distributed_id=distributed_id,
            base_version_id=base_version_id,
            source_version_id=source_version_id,
            created_at=created_at,
        )
        self.conn.execute(st.VERSION_INSERT, row)
        if index is not None:
            self.bump_index(collection_id, index)
        if state == COMMITTED:
            self.index_metadata(vid, metadata, replace=False)
            self.index_words(vid, description, replace=False)
        return vid

    def insert_imported(
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
        return self.insert(
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

    def index_metadata(
        self, version_id: str, metadata: Mapping[str, Any], *, replace: bool = True
    ) -> None:
        """Make the search index hold ``metadata``'s leaves for the version (see _schema.py)."""
        if replace:
            self.conn.execute(st.METADATA_DELETE, {"vid": version_id})
        rows = metadata_rows(version_id, metadata)
        if rows:
            self.conn.execute(st.METADATA_INSERT, rows)

    def index_words(
        self, version_id: str, description: str | None, *, replace: bool = True
    ) -> None:
        """Make the search index hold the words of the version's description (see _schema.py)."""
        if replace:
            self.conn.execute(st.WORDS_DELETE, {"vid": version_id})
        rows = word_rows(version_id, description)
        if rows:
            self.conn.execute(st.WORDS_INSERT, rows)

    def index_used(self, collection_id: int, index: int) -> bool:
        """Whether the collection ever gave out number ``index`` (deleted versions keep theirs)."""
        v = s.versions.c
        q = select(v.id).where(v.collection_id == collection_id, v.idx == index)
        return self.conn.execute(q).first() is not None

    def bump_index(self, collection_id: int, used: int) -> None:
        """Keep ``next_index`` above ``used`` (never lowered: an imported version may carry an
        older number than the collection's newest)."""
        self.conn.execute(st.BUMP_INDEX, bump_index_row(collection_id, used, at=now()))

    def set_state(self, version_id: str, state: str) -> None:
        v = s.versions.c
        self.conn.execute(
            update(s.versions).where(v.id == version_id).values(state=state, updated_at=now())
        )

    def update(
        self,
        version_id: str,
        *,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        values: dict[str, Any] = {"updated_at": now()}
        if description is not None:
            values["description"] = description
        if metadata is not None:
            values["metadata"] = to_json(dict(metadata))
        self.conn.execute(update(s.versions).where(s.versions.c.id == version_id).values(**values))
        if metadata is not None:
            self.index_metadata(version_id, metadata)
        if description is not None:
            self.index_words(version_id, description)

    def resolve(self, collection_id: int, label: str | None) -> str | None:
        """The committed version a label names: ``None``/``latest``, ``vN`` or an alias."""
        if label is not None and is_version_label(label):
            at = {"collection_id": collection_id, "idx": version_index(label), "now": now()}
            vid = self.conn.execute(_BY_INDEX, at).scalar()
            return None if vid is None else str(vid)
        params = {"collection_id": collection_id, "alias": label or LATEST, "now": now()}
        vid = self.conn.execute(_BY_ALIAS, params).scalar()
        if vid is None and (label or LATEST) == LATEST:
            # No "latest" alias (an edit removed it): the newest committed version, as in W&B.
            vid = self.newest_committed(collection_id)
        return None if vid is None else str(vid)

    def named(
        self, entity: str, project: str, name: str, label: str | None
    ) -> VersionRecord | None:
        """The record of the version ``name:label`` names in ``entity/project`` when a label
        (``None``: ``latest``) names one alive, in one query; else None (``resolve`` says why)."""
        at = now()
        params: dict[str, Any] = {"entity": entity, "project": project, "name": name, "now": at}
        if label is not None and is_version_label(label):
            row = self.conn.execute(st.RECORD_BY_INDEX, {**params, "idx": version_index(label)})
        else:
            row = self.conn.execute(st.RECORD_BY_ALIAS, {**params, "alias": label or LATEST})
        found = row.first()
        return None if found is None else version_record(found._mapping, at)

    def newest_committed(self, collection_id: int) -> str | None:
        v = s.versions.c
        q = (
            select(v.id)
            .where(v.collection_id == collection_id, alive())
            .order_by(v.idx.desc())
            .limit(1)
        )
        vid = self.conn.execute(q).scalar()
        return None if vid is None else str(vid)

    def ids(
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
            .where(or_(v.state != COMMITTED, alive()) if not include_deleted else true())
            .order_by(v.idx.is_(None), v.idx, v.created_at)
        )
        return [str(r[0]) for r in self.conn.execute(q)]

    def live_roots(self) -> list[str]:
        """Manifest roots of every version not deleted (what gc keeps, with what they refer to)."""
        v = s.versions.c
        q = select(v.digest).where(alive(), v.digest.is_not(None)).distinct()
        return [str(r[0]) for r in self.conn.execute(q)]

    def records(self, ids: Sequence[str]) -> list[VersionRecord]:
        if not ids:
            return []
        if len(ids) == 1:  # one version (a resolve): the statement built once
            found = self.conn.execute(st.VERSION_RECORD, {"vid": ids[0]})
        else:
            found = self.conn.execute(
                st.VERSION_RECORDS.where(self.tx.among(s.versions.c.id, list(ids)))
            )
        rows = {str(r.id): r._mapping for r in found}
        at = now()
        out = []
        for vid in ids:
            r = rows.get(vid)
            if r is None:
                raise ArtifactNotFoundError(f"artifact version {vid!r} not found")
            out.append(version_record(r, at))
        return out

    def record(self, version_id: str) -> VersionRecord:
        return self.records([version_id])[0]
