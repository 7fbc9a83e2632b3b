"""The store's side of ``cairn sync``: exporting versions with everything the catalog keeps
about them, and importing runs and versions from another store as they were there."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from cairn.core import LATEST, RunRecord, check_digest
from cairn.errors import ArtifactNotFoundError, ConflictError, ValidationError
from cairn.service import _manifests as manifests
from cairn.service._protocol import CommitResult, ImportRequest, VersionExport
from cairn.service._store import Store, Unreadable, optional_run, require_run

if TYPE_CHECKING:
    from cairn.catalog import BlobReader, Tx

_ROLES = ("output", "input", "writer")


def _link_source(tx: Tx, request: ImportRequest) -> str:
    """The version a link being imported links to: ``link_of``'s one with its digest."""
    assert request.link_of is not None
    entity, project, name = request.link_of
    _, cid = tx.collections.locate(entity, project, name)
    found = None if cid is None else tx.versions.committed_with_digest(cid, request.digest)
    if found is None:
        raise ArtifactNotFoundError(
            f"{request.project}/{request.name} links to {entity}/{project}/{name} with digest"
            f" {request.digest}, which is not in this store: import that version first"
        )
    return found


class Sync:
    """``export_versions``, ``import_run`` and ``import_version`` over one store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def export_versions(self, entity: str, project: str, name: str) -> list[VersionExport]:
        def fn(tx: Tx) -> list[VersionExport]:
            pid, cid = tx.collections.locate(entity, project, name)
            if pid is None or cid is None:
                return []
            described = tx.collections.records(pid, name=name)
            description = described[0].description if described else None
            out = []
            for rec in tx.versions.records(tx.versions.ids(cid)):
                base_digest = None
                if rec.base_version_id is not None:
                    base_digest = tx.versions.record(rec.base_version_id).digest
                runs = {role: tx.lineage.runs_of(rec.id, role) for role in _ROLES}
                link_of = None
                if rec.source_version_id is not None:
                    linked = tx.versions.record(rec.source_version_id)
                    link_of = (linked.entity, linked.project, linked.name)
                out.append(VersionExport(rec, runs, base_digest, description, link_of))
            return out

        return self._store.catalog.read(fn)

    def import_run(self, run: RunRecord) -> RunRecord:
        def fn(tx: Tx) -> RunRecord:
            pid = tx.projects.id_of(run.entity, run.project, create=True)
            assert pid is not None
            tx.runs.insert_imported(pid, run)
            return tx.runs.record(pid, run.id)

        return self._store.catalog.write(fn)

    def import_version(
        self, request: ImportRequest, reader: BlobReader | None = None
    ) -> CommitResult:
        """``Service.import_version``. ``reader``: a server's key, which may import only a
        manifest whose pages and blobs it may read; the others are answered as missing, as
        absent ones are (checked in the statement that grants them to the project, in the
        import's transaction, as a commit's are: the manifest is read once)."""
        with self._store.maintenance.shared():
            try:
                return self._import_version(request, reader)
            except Unreadable as refused:
                return CommitResult(None, False, refused.digests)

    def _import_version(self, request: ImportRequest, reader: BlobReader | None) -> CommitResult:
        store = self._store
        check_digest(request.digest)
        if request.index is not None and request.index < 0:
            raise ValidationError(f"a version number is 0 or more, not {request.index}")
        ttl = request.ttl_seconds
        if ttl is not None and not (math.isfinite(ttl) and ttl > 0):
            raise ValidationError(f"a TTL must be positive, got {ttl} seconds")
        existing = store.committed_with_digest(
            request.entity, request.project, request.name, request.digest
        )
        pages: list[str] = []
        blobs: list[str] = []
        size = count = 0
        if existing is None:
            # Level by level, as a commit's manifest: a page the key may not read (the root, or
            # one below it) is answered as missing, as an absent one is, and nothing below it is
            # read. The key is told to upload it (proving it has it), never what it names.
            unreadable = None if reader is None else lambda d: store.unreadable(reader, d)
            pages, blobs, missing = manifests.closure(store, request.digest, unreadable)
            if missing:
                return CommitResult(None, False, tuple(missing))
            # As a commit's: looked for in the statement that grants them, where it can.
            in_grant = reader is not None and store.presence_in_grant
            absent = [] if in_grant else store.missing_blobs(blobs)
            if absent:
                if reader is not None:
                    # Present blobs the key may not read are answered with the absent ones:
                    # the answer never tells a key that content it may not read is stored.
                    absent = [*store.unreadable(reader, blobs), *absent]
                return CommitResult(None, False, tuple(dict.fromkeys(absent)))
            top = store.reader.root_ref(request.digest)
            size, count = top.size, top.entry_count

        def fn(tx: Tx) -> CommitResult:
            pid = tx.projects.id_of(request.entity, request.project, create=True)
            assert pid is not None
            creator = optional_run(tx, pid, request.created_by)
            links = []
            for role, entity, project, run_id in request.runs:
                links.append((role, require_run(tx, entity, project, run_id)))
            cid, next_index = tx.collections.lock(
                pid, request.name, request.type, request.collection_description
            )
            found = tx.versions.committed_with_digest(cid, request.digest)
            created = found is None
            source_id: str | None = None
            if found is None and request.link_of is not None:
                source_id = _link_source(tx, request)
            if found is None:
                if not pages:
                    # The duplicate vanished between the check and now (deleted): start again.
                    raise ConflictError("the destination changed during the import; run it again")
                index = next_index if request.index is None else request.index
                if request.index is not None and tx.versions.index_used(cid, request.index):
                    raise ConflictError(
                        f"{request.project}/{request.name}:v{request.index} exists already with"
                        " other content; import it with a new number"
                    )
                unreadable = store.grant_readable(tx, pid, [*pages, *blobs], reader)
                if unreadable:
                    raise Unreadable(unreadable)  # nothing of the import is written
                found = tx.versions.insert_imported(
                    collection_id=cid,
                    index=index,
                    digest=request.digest,
                    size=size,
                    file_count=count,
                    metadata=request.metadata,
                    description=request.description,
                    created_by=creator,
                    base_version_id=request.base_version_id,
                    created_at=request.created_at,
                    source_version_id=source_id,
                )
                if ttl is not None:
                    tx.ttl.assign(found, ttl, start=request.created_at)
            elif ttl is not None and tx.versions.record(found).ttl_seconds != ttl:
                tx.ttl.assign(found, ttl)
            for alias in request.aliases:
                if alias != LATEST:
                    tx.aliases.assign(cid, alias, found)
            tx.aliases.move_latest(cid)
            tx.tags.add(found, request.tags)
            if creator is not None:
                tx.lineage.add(found, creator, "output")
            for role, pk in links:
                tx.lineage.add(found, pk, role)
            return CommitResult(tx.versions.record(found), created=created)

        return store.catalog.write(fn)
