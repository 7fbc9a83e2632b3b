"""Changing committed versions and collections: metadata, aliases, tags, time to live and
deletion (files never change; a new version is a commit)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cairn.core import (
    DELETED,
    LATEST,
    PENDING,
    CollectionRecord,
    VersionRecord,
    check_json_value,
    check_ttl_allowed,
    validate_alias,
    validate_aliases,
    validate_tags,
)
from cairn.errors import ArtifactNotFoundError, UsageError, ValidationError
from cairn.service._store import Store, require_collection, require_committed, require_project

if TYPE_CHECKING:
    from cairn.catalog import Tx


def delete_version_in(tx: Tx, version_id: str, *, delete_aliases: bool) -> None:
    """Delete a version in ``tx``: a pending one is dropped, a committed one marked deleted
    (refused while it has aliases, unless ``delete_aliases``); ``latest`` moves."""
    rec = tx.versions.record(version_id)
    if rec.state == DELETED:
        return
    if rec.state == PENDING:
        tx.pending.drop(version_id)
        return
    if rec.aliases and not delete_aliases:
        # As in W&B, "latest" counts: the newest version is kept by "delete every version
        # without an alias".
        raise UsageError(
            f"{rec.qualified_name} has aliases {', '.join(rec.aliases)}; remove them"
            " first or pass delete_aliases=True"
        )
    for alias in rec.aliases:
        tx.aliases.remove(rec.collection_id, alias, version_id)
    tx.versions.set_state(version_id, DELETED)
    if LATEST in rec.aliases:
        tx.aliases.move_latest(rec.collection_id)


class Versions:
    """The methods of ``Service`` that change versions and collections, over one store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def update_version(
        self,
        version_id: str,
        *,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        aliases: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
    ) -> VersionRecord:
        if aliases is not None:
            validate_aliases(aliases)
        if metadata is not None:
            check_json_value(dict(metadata), "metadata")
        if aliases is not None:
            validate_aliases(list(aliases))
        if tags is not None:
            validate_tags(list(tags))

        def fn(tx: Tx) -> VersionRecord:
            rec = require_committed(tx, version_id)
            tx.versions.update(version_id, description=description, metadata=metadata)
            if aliases is not None:
                tx.aliases.replace(rec.collection_id, version_id, aliases)
            if tags is not None:
                tx.tags.replace(version_id, tags)
            return tx.versions.record(version_id)

        return self._store.catalog.write(fn)

    def add_alias(self, version_id: str, alias: str) -> VersionRecord:
        validate_alias(alias)

        def fn(tx: Tx) -> VersionRecord:
            rec = require_committed(tx, version_id)
            tx.aliases.assign(rec.collection_id, alias, version_id)
            return tx.versions.record(version_id)

        return self._store.catalog.write(fn)

    def remove_alias(self, version_id: str, alias: str) -> VersionRecord:
        def fn(tx: Tx) -> VersionRecord:
            rec = require_committed(tx, version_id)
            if not tx.aliases.remove(rec.collection_id, alias, version_id):
                raise ArtifactNotFoundError(f"{rec.qualified_name} has no alias {alias!r}")
            return tx.versions.record(version_id)

        return self._store.catalog.write(fn)

    def delete_version(self, version_id: str, *, delete_aliases: bool = False) -> None:
        self._store.catalog.write(
            lambda tx: delete_version_in(tx, version_id, delete_aliases=delete_aliases)
        )

    # -- time to live (W&B's Artifact.ttl) --

    def set_ttl(self, version_id: str, ttl_seconds: float | None) -> VersionRecord:
        """Give a committed version a TTL counted from its commit (None: keep it for ever)."""
        if ttl_seconds is not None and not ttl_seconds > 0:
            raise ValidationError(f"a TTL must be positive, got {ttl_seconds} seconds")

        def fn(tx: Tx) -> VersionRecord:
            rec = require_committed(tx, version_id)
            check_ttl_allowed(rec.type, rec.source_version_id is not None)
            tx.ttl.assign(version_id, ttl_seconds)
            return tx.versions.record(version_id)

        return self._store.catalog.write(fn)

    def expire_versions(self) -> int:
        """Mark versions whose TTL ran out as deleted (their aliases go, ``latest`` moves);
        return how many. Queries hide them already; gc then frees their blobs."""

        def fn(tx: Tx) -> int:
            ids = tx.ttl.expired()
            for vid in ids:
                cid = tx.versions.record(vid).collection_id
                had_latest = LATEST in tx.aliases.of(vid)
                for alias in tx.aliases.of(vid):
                    tx.aliases.remove(cid, alias, vid)
                tx.versions.set_state(vid, DELETED)
                if had_latest:
                    tx.aliases.move_latest(cid)
            return len(ids)

        return self._store.catalog.write(fn)

    # -- collections (W&B's ArtifactCollection: rename, description, tags, delete) --

    def update_collection(
        self,
        entity: str,
        project: str,
        name: str,
        *,
        new_name: str | None = None,
        description: str | None = None,
        tags: Sequence[str] | None = None,
    ) -> CollectionRecord:
        """Rename a collection, change its description or replace its tags (all or nothing)."""

        def fn(tx: Tx) -> CollectionRecord:
            cid = require_collection(tx, entity, project, name)
            tx.collections.update(cid, name=new_name, description=description)
            if tags is not None:
                tx.collections.set_tags(cid, tags)
            pid = require_project(tx, entity, project)
            return tx.collections.records(pid, name=new_name or name)[0]

        return self._store.catalog.write(fn)

    def delete_collection(self, entity: str, project: str, name: str) -> None:
        """Delete a collection and every version of it (their blobs go with the next gc)."""

        def fn(tx: Tx) -> None:
            tx.collections.delete(require_collection(tx, entity, project, name))

        self._store.catalog.write(fn)
