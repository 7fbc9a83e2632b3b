"""Registries and links (W&B's Registry, ``link_artifact``): a registry is a project
``wandb-registry-<name>`` of the entity ``REGISTRY_ENTITY``; a link is a version of another
collection with its own number and aliases and the content of its source (no copy)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cairn.core import (
    COMMITTED,
    DELETED,
    LATEST,
    REGISTRY_ENTITY,
    REGISTRY_PREFIX,
    RegistryRecord,
    VersionRecord,
)
from cairn.errors import ArtifactNotFoundError, UsageError, ValidationError
from cairn.service import _manifests as manifests
from cairn.service._store import Store, require_committed

if TYPE_CHECKING:
    from cairn.catalog import Tx

DEFAULT_REGISTRIES = ("model", "dataset")


def _registry(row: Any) -> RegistryRecord:
    return RegistryRecord(
        name=str(row.name)[len(REGISTRY_PREFIX) :],
        entity=str(row.entity),
        project=str(row.name),
        description=row.description,
        visibility=str(row.visibility),
        artifact_types=tuple(json.loads(row.artifact_types)),
        created_at=float(row.created_at),
    )


def _registry_project(tx: Tx, project: str, *, create_default: bool) -> int:
    """The project id of registry ``project`` (``wandb-registry-<name>``); the default
    registries ``model`` and ``dataset`` exist from their first use, as in W&B."""
    pid = tx.projects.id_of(REGISTRY_ENTITY, project, create=False)
    if pid is not None and tx.registries.rows(project):
        return pid
    name = project[len(REGISTRY_PREFIX) :]
    if not (create_default and name in DEFAULT_REGISTRIES):
        raise ArtifactNotFoundError(
            f"registry {name!r} does not exist; create it with"
            f" cairn.Api().create_registry({name!r})"
        )
    pid = tx.projects.id_of(REGISTRY_ENTITY, project, create=True)
    assert pid is not None
    tx.registries.create(pid, f"The default {name} registry", "organization", ())
    return pid


class _BlobsNeeded(Exception):
    """A link's transaction found the link new, but its blobs were not read before it."""

    def __init__(self, digest: str) -> None:
        super().__init__(digest)
        self.digest = digest


def _source(tx: Tx, version_id: str) -> VersionRecord:
    """The committed version a link is made of (a link of a link names the real source)."""
    src = require_committed(tx, version_id)
    if src.source_version_id is not None:
        src = require_committed(tx, src.source_version_id)
    return src


class Registries:
    """The registry and link methods of ``Service`` over one store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def link_version(
        self,
        source_version_id: str,
        entity: str,
        project: str,
        name: str,
        aliases: Sequence[str] = (),
    ) -> VersionRecord:
        """Link a committed version into ``entity/project/name`` (a registry collection, or any
        other): a version there with its own number and aliases and the source's content (no
        copy). Linking the same source again gives the existing link the aliases."""
        store = self._store

        def fn(tx: Tx, granted: list[str] | None) -> VersionRecord:
            src = _source(tx, source_version_id)
            if project.startswith(REGISTRY_PREFIX):
                pid = _registry_project(tx, project, create_default=True)
                allowed = json.loads(tx.registries.rows(project)[0].artifact_types)
                if allowed and src.type not in allowed:
                    raise ValidationError(
                        f"registry {project[len(REGISTRY_PREFIX) :]!r} accepts types"
                        f" {', '.join(allowed)}, not {src.type!r}"
                    )
            else:
                found_pid = tx.projects.id_of(entity, project, create=True)
                assert found_pid is not None
                pid = found_pid
            cid, next_index = tx.collections.lock(pid, name, src.type, None)
            if cid == src.collection_id:
                raise ValidationError(f"{src.qualified_name} is already in {project}/{name}")
            vid = tx.registries.link_of(cid, src.id)
            if vid is None:
                assert src.digest is not None
                if store.track_blob_owners and granted is None:
                    raise _BlobsNeeded(src.digest)  # the link was removed meanwhile
                vid = tx.versions.insert(
                    collection_id=cid,
                    state=COMMITTED,
                    index=next_index,
                    digest=src.digest,
                    size=src.size,
                    file_count=src.file_count,
                    metadata=src.metadata,
                    description=src.description,
                    created_by=None,
                    source_version_id=src.id,
                )
                store.grant(tx, pid, granted or ())
            for alias in (*aliases, LATEST):
                tx.aliases.assign(cid, alias, vid)
            return tx.versions.record(vid)

        granted = self._granted_by_new_link(source_version_id, entity, project, name)
        try:
            return store.catalog.write(lambda tx: fn(tx, granted))
        except _BlobsNeeded as need:
            granted = manifests.every_blob(store, need.digest)
            return store.catalog.write(lambda tx: fn(tx, granted))

    def _granted_by_new_link(
        self, source_version_id: str, entity: str, project: str, name: str
    ) -> list[str] | None:
        """The blobs a new link grants its project (a server's readers may read them), read
        before the link's transaction, never inside it; None where there is nothing to read
        (a store that keeps no grants, or a link that exists)."""
        store = self._store
        if not store.track_blob_owners:
            return None

        def fn(tx: Tx) -> str | None:
            src = _source(tx, source_version_id)
            owner = REGISTRY_ENTITY if project.startswith(REGISTRY_PREFIX) else entity
            pid = tx.projects.id_of(owner, project, create=False)
            cid = None if pid is None else tx.collections.id_of(pid, name)
            if cid is not None and tx.registries.link_of(cid, src.id) is not None:
                return None
            return src.digest

        digest = store.catalog.read(fn)
        return None if digest is None else manifests.every_blob(store, digest)

    def unlink_version(self, version_id: str) -> None:
        """Remove a link (the source version stays)."""

        def fn(tx: Tx) -> None:
            rec = require_committed(tx, version_id)
            if rec.source_version_id is None:
                raise UsageError(
                    f"{rec.qualified_name} is not a link; unlink() removes a version from a"
                    " registry (or other collection) it was linked to; use delete() here"
                )
            for alias in rec.aliases:
                tx.aliases.remove(rec.collection_id, alias, version_id)
            tx.versions.set_state(version_id, DELETED)
            if LATEST in rec.aliases:
                tx.aliases.move_latest(rec.collection_id)

        self._store.catalog.write(fn)

    def version_links(self, version_id: str) -> list[VersionRecord]:
        """The live links of a version (where it was linked to)."""

        def fn(tx: Tx) -> list[VersionRecord]:
            return tx.versions.records(tx.registries.links_of(version_id))

        return self._store.catalog.read(fn)

    def create_registry(
        self,
        name: str,
        *,
        description: str | None = None,
        visibility: str = "organization",
        artifact_types: Sequence[str] = (),
    ) -> RegistryRecord:
        project = REGISTRY_PREFIX + name

        def fn(tx: Tx) -> RegistryRecord:
            if tx.registries.rows(project):
                raise ValidationError(f"registry {name!r} already exists")
            pid = tx.projects.id_of(REGISTRY_ENTITY, project, create=True)
            assert pid is not None
            tx.registries.create(pid, description, visibility, artifact_types)
            return _registry(tx.registries.rows(project)[0])

        return self._store.catalog.write(fn)

    def list_registries(self) -> list[RegistryRecord]:
        def fn(tx: Tx) -> list[RegistryRecord]:
            for name in DEFAULT_REGISTRIES:
                _registry_project(tx, REGISTRY_PREFIX + name, create_default=True)
            return [_registry(r) for r in tx.registries.rows()]

        return self._store.catalog.write(fn)
