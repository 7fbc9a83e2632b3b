"""The one authorization wrapper: the server's Service as one API key may use it.

Every REST route and every page of the web UI calls a ``ScopedService``; each permission rule of
the server is written here once:

* a project the key may not read is "not found" (404), whether it exists or not; a key that may
  read but not do what it asks gets 403 (``Principal.require``);
* a version is looked up by id and then treated as its project (``_version``), with the same
  answer for a version that does not exist and one the key may not read;
* lists (projects, a run's versions, a version's runs and links, registries, lineage in exports)
  leave out what the key may not read;
* blobs: a key sees those it uploaded and those of projects it may read
  (``cairn.catalog.readable_blobs``); a commit may refer only to those, others are "missing";
* uploads need write access somewhere; maintenance and API keys need a server admin key.

Input is validated by the routes (the adapter) before it gets here; this class checks only who
may do what.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from cairn.catalog import Uploads, readable_blobs
from cairn.core import (
    REGISTRY_ENTITY,
    REGISTRY_PREFIX,
    CollectionRecord,
    RegistryRecord,
    RunRecord,
    VersionRecord,
)
from cairn.errors import (
    ArtifactNotFoundError,
    BlobNotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from cairn.server._auth import Grant, Principal
from cairn.server._backend import Backend
from cairn.server._batches import BatchUpload
from cairn.server._transfers import PartWriter
from cairn.service import (
    DEFAULT_GRACE_SECONDS,
    CommitRequest,
    CommitResult,
    FinishRequest,
    GcReport,
    ImportRequest,
    SearchRequest,
    SearchResult,
    StageRequest,
    VerifyReport,
    VersionExport,
)
from cairn.storage import BlobInfo

_MAX_KNOWN = 200_000  # digests remembered as readable, per key


class ScopedService:
    """The server's ``LocalService`` seen through one key's grants (a ``cairn.service.Service``,
    plus the server's own operations: uploads, maintenance, API keys)."""

    def __init__(self, backend: Backend, who: Principal) -> None:
        self._b = backend
        self._inner = backend.service
        self.who = who
        self._uploads = Uploads(backend.catalog)
        self._known: set[str] = set()  # digests found readable (the UI keeps one per key)
        self._lock = threading.Lock()

    # -- identity --

    @property
    def default_entity(self) -> str:
        return self.who.user

    @property
    def location(self) -> str:
        return self._inner.location

    @property
    def is_local(self) -> bool:
        return True

    def close(self) -> None:
        """The server's service outlives any key's view of it."""

    # -- the rules --

    def require(self, entity: str, project: str, role: str = "read") -> None:
        self.who.require(entity, project, role)

    def can_read(self, entity: str, project: str) -> bool:
        return self.who.role_on(entity, project) is not None

    def may(self, entity: str, project: str, role: str) -> bool:
        """Whether ``require(entity, project, role)`` would let the call through (the UI shows
        its edit controls by it)."""
        try:
            self.require(entity, project, role)
        except (ArtifactNotFoundError, PermissionDeniedError):
            return False
        return True

    def _version(self, version_id: str, role: str = "read") -> VersionRecord:
        if not version_id.isalnum() or len(version_id) > 32:
            raise ValidationError(f"invalid version id {version_id[:40]!r}")
        try:
            rec = self._inner.get_version(version_id)
        except ArtifactNotFoundError:
            rec = None
        if rec is None or not self.can_read(rec.entity, rec.project):
            # The same answer as for a version that does not exist: nothing about others' projects.
            raise ArtifactNotFoundError(f"artifact version {version_id!r} not found")
        self.require(rec.entity, rec.project, role)
        return rec

    def _readable_versions(self, found: Iterable[VersionRecord]) -> list[VersionRecord]:
        return [v for v in found if self.can_read(v.entity, v.project)]

    def _readable_runs(self, found: Iterable[RunRecord]) -> list[RunRecord]:
        return [r for r in found if self.can_read(r.entity, r.project)]

    def readable_blobs(self, digests: Sequence[str]) -> set[str]:
        """Those of ``digests`` the key may read (and so need not upload)."""
        with self._lock:
            known = {d for d in digests if d in self._known}
        rest = [d for d in digests if d not in known]
        if not rest:
            return known
        found = readable_blobs(self._b.catalog, self.who.uploader, self.who.readable, rest)
        with self._lock:
            if len(self._known) + len(found) > _MAX_KNOWN:
                self._known.clear()
            self._known.update(found)
        return known | found

    def check_blob(self, digest: str) -> None:
        """Raise unless the key may read the blob (routes that stream it read the store then)."""
        if digest not in self.readable_blobs([digest]):
            # The same answer as for content that does not exist: nothing leaks.
            raise BlobNotFoundError(f"blob {digest} is not in any project this key may read")

    def _unreadable(self, digests: Sequence[str]) -> tuple[str, ...]:
        have = self.readable_blobs(digests)
        return tuple(d for d in dict.fromkeys(digests) if d not in have)

    def require_upload(self) -> None:
        if not any(g.role in ("write", "admin") for g in self.who.grants):
            raise PermissionDeniedError(
                f"key of {self.who.user!r} may not write anywhere, so not upload"
            )

    def require_admin(self) -> None:
        self.who.require_admin()

    # -- runs --

    def start_run(self, run: RunRecord) -> RunRecord:
        self.require(run.entity, run.project, "write")
        return self._inner.start_run(run)

    def finish_run(
        self, entity: str, project: str, run_id: str, state: str, config: Mapping[str, Any] | None
    ) -> None:
        self.require(entity, project, "write")
        self._inner.finish_run(entity, project, run_id, state, config)

    def get_run(self, entity: str, project: str, run_id: str) -> RunRecord:
        self.require(entity, project)
        return self._inner.get_run(entity, project, run_id)

    def run_versions(
        self, entity: str, project: str, run_id: str, role: str
    ) -> list[VersionRecord]:
        self.require(entity, project)
        return self._readable_versions(self._inner.run_versions(entity, project, run_id, role))

    def version_runs(self, version_id: str, role: str) -> list[RunRecord]:
        self._version(version_id)
        return self._readable_runs(self._inner.version_runs(version_id, role))

    def list_runs(self, entity: str, project: str) -> list[RunRecord]:
        self.require(entity, project)
        return self._inner.list_runs(entity, project)

    def delete_run(
        self, entity: str, project: str, run_id: str, *, delete_artifacts: bool = False
    ) -> None:
        self.require(entity, project, "write")
        self._inner.delete_run(entity, project, run_id, delete_artifacts=delete_artifacts)

    # -- a run's history and summary (W&B's run.log, run.summary) --

    def log_history(
        self, entity: str, project: str, run_id: str, rows: Sequence[str], summary: str | None
    ) -> None:
        self.require(entity, project, "write")
        self._inner.log_history(entity, project, run_id, rows, summary)

    def run_history(
        self,
        entity: str,
        project: str,
        run_id: str,
        *,
        min_step: int | None = None,
        max_step: int | None = None,
        limit: int | None = None,
    ) -> list[str]:
        self.require(entity, project)
        return self._inner.run_history(
            entity, project, run_id, min_step=min_step, max_step=max_step, limit=limit
        )

    def run_summary(self, entity: str, project: str, run_id: str) -> str:
        self.require(entity, project)
        return self._inner.run_summary(entity, project, run_id)

    # -- blobs --

    def store_blobs(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Store verified blobs (``items`` re-hashed by the caller) as uploaded by this key."""
        self.require_upload()
        self._b.blobs.put_many(items)
        self._uploads.record_uploaded(self.who.uploader, [d for d, _ in items])

    def batch_upload(self) -> BatchUpload:
        """Blobs of one batch request, recorded as uploaded by this key (``server/_batches.py``)."""
        self.require_upload()
        index = self._b.transfers.object_store
        return BatchUpload(
            self._b.blobs, None if index is None else index.index, self._uploads, self.who.uploader
        )

    def store_file(self, path: str, *, link: bool = False) -> BlobInfo:
        raise PermissionDeniedError("files are uploaded through /api/v1/uploads")

    def store_blob_file(self, path: str, digest: str, size: int) -> None:
        raise PermissionDeniedError("files are uploaded through /api/v1/uploads")

    def missing_blobs(self, digests: Sequence[str]) -> list[str]:
        have = self.readable_blobs(digests)
        # Readable and actually stored: a blob lost from the store (or removed as damaged by
        # verify) is reported missing, so the next log of the same content repairs it.
        have &= self._b.blobs.has_many(list(have))
        return [d for d in dict.fromkeys(digests) if d not in have]

    def read_blob(self, digest: str) -> bytes:
        self.check_blob(digest)
        return self._inner.read_blob(digest)

    def read_blobs(self, digests: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        for digest in digests:
            yield digest, self.read_blob(digest)

    def small_blobs(self, digests: Sequence[str]) -> dict[str, bytes]:
        """The readable ones of ``digests`` the store keeps small (see ``BlobStore.small_many``)."""
        allowed = self.readable_blobs(digests)
        return self._b.blobs.small_many([d for d in dict.fromkeys(digests) if d in allowed])

    def blob_path(self, digest: str) -> str | None:
        return None  # a blob leaves the server only through a checked read

    def download_blob(self, digest: str, dest: str) -> None:
        self.check_blob(digest)
        self._inner.download_blob(digest, dest)

    def read_blob_range(self, digest: str, start: int, length: int) -> bytes:
        self.check_blob(digest)
        return self._inner.read_blob_range(digest, start, length)

    def prefetch_blobs(self, digests: Sequence[str]) -> None:
        """Nothing to prefetch: the blobs are local to the server."""

    # -- uploads of large blobs (server/_transfers.py) --

    def begin_upload(self, digest: str, size: int) -> dict[str, Any]:
        self.require_upload()
        return self._b.transfers.begin(self.who.uploader, digest, size)

    def upload_status(self, upload_id: str) -> dict[str, Any]:
        self.require_upload()
        return self._b.transfers.status(self.who.uploader, upload_id)

    def open_upload_part(self, upload_id: str, number: int) -> PartWriter:
        self.require_upload()
        return self._b.transfers.open_part(self.who.uploader, upload_id, number)

    def upload_part_url(self, upload_id: str, number: int, checksum: str) -> dict[str, Any]:
        self.require_upload()
        return self._b.transfers.part_url(self.who.uploader, upload_id, number, checksum)

    def complete_upload(self, upload_id: str) -> tuple[str, int]:
        self.require_upload()
        digest, size = self._b.transfers.complete(self.who.uploader, upload_id)
        self._uploads.record_uploaded(self.who.uploader, [digest])
        return digest, size

    # -- versions: writes --

    def _check_write(self, request: CommitRequest | StageRequest) -> tuple[str, ...]:
        """Write access to the project; the base version readable and in the project; returns
        the blobs the changes name that the key may not use (it must upload them first)."""
        self.require(request.entity, request.project, "write")
        if request.base_version_id is not None:
            base = self._version(request.base_version_id)
            if (base.entity, base.project) != (request.entity, request.project):
                raise ValidationError(
                    f"the base version {base.qualified_name} is in another project than"
                    f" {request.entity}/{request.project}"
                )
        digests = [e.digest for _, e in request.changes if e is not None and e.ref is None]
        return self._unreadable(digests)

    def _unreadable_in_manifest(self, root: str) -> tuple[str, ...]:
        """A client-written manifest (``CommitRequest.manifest``): the key must be able to read
        its pages and every blob it names, checked page by page (never the whole manifest)."""
        if self._unreadable([root]):
            raise ValidationError(
                f"manifest page {root} is not in the store: store the manifest's pages before"
                " committing it (log the artifact again)"
            )
        absent: list[str] = []
        for batch in self._inner.manifest_blob_batches(root):
            absent.extend(self._unreadable(batch))
        return tuple(dict.fromkeys(absent))

    def commit(self, request: CommitRequest) -> CommitResult:
        missing = self._check_write(request)
        if request.manifest is not None:
            missing = (*self._unreadable_in_manifest(request.manifest), *missing)
        if missing:
            return CommitResult(None, False, missing)
        return self._inner.commit(request)

    def stage(self, request: StageRequest) -> VersionRecord:
        missing = self._check_write(request)
        if missing:
            raise BlobNotFoundError(
                f"{len(missing)} blobs must be uploaded before staging, e.g. {missing[0]}"
            )
        return self._inner.stage(request)

    def finish(self, request: FinishRequest) -> CommitResult:
        missing = self._check_write(request)
        if missing:
            return CommitResult(None, False, missing)
        return self._inner.finish(request)

    def discard_pending(self, version_id: str) -> None:
        self._version(version_id, "write")
        self._inner.discard_pending(version_id)

    def cleanup_pending(self, older_than_seconds: float) -> int:
        self.require_admin()
        return self._inner.cleanup_pending(older_than_seconds)

    # -- versions: reads --

    def resolve(self, entity: str, project: str, name: str, label: str | None) -> VersionRecord:
        self.require(entity, project)
        return self._inner.resolve(entity, project, name, label)

    def get_version(self, version_id: str) -> VersionRecord:
        return self._version(version_id)

    def list_versions(
        self, entity: str, project: str, name: str, *, include_pending: bool = False
    ) -> list[VersionRecord]:
        self.require(entity, project)
        return self._inner.list_versions(entity, project, name, include_pending=include_pending)

    def list_collections(
        self, entity: str, project: str, type_name: str | None = None
    ) -> list[CollectionRecord]:
        self.require(entity, project)
        return self._inner.list_collections(entity, project, type_name)

    def list_types(self, entity: str, project: str) -> list[str]:
        self.require(entity, project)
        return self._inner.list_types(entity, project)

    def list_projects(self, entity: str | None = None) -> list[tuple[str, str]]:
        return [p for p in self._inner.list_projects(entity) if self.can_read(*p)]

    def search(self, request: SearchRequest) -> SearchResult:
        """``search`` within the projects the key may read (and those asked for, if any): the
        catalog query is limited to them, so nothing outside the key's grants is even counted."""
        request.check()
        if request.collection is not None:
            self.require(request.collection[0], request.collection[1])
        scope: tuple[tuple[str, str], ...] | None = request.projects
        if not self.who.is_admin:
            readable = self.list_projects()
            wanted = None if scope is None else set(scope)
            scope = tuple(p for p in readable if wanted is None or p in wanted)
        return self._inner.search(dataclasses.replace(request, projects=scope))

    # -- versions: changes --

    def update_version(
        self,
        version_id: str,
        *,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        aliases: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
    ) -> VersionRecord:
        self._version(version_id, "write")
        return self._inner.update_version(
            version_id, description=description, metadata=metadata, aliases=aliases, tags=tags
        )

    def add_alias(self, version_id: str, alias: str) -> VersionRecord:
        self._version(version_id, "write")
        return self._inner.add_alias(version_id, alias)

    def remove_alias(self, version_id: str, alias: str) -> VersionRecord:
        self._version(version_id, "write")
        return self._inner.remove_alias(version_id, alias)

    def delete_version(self, version_id: str, *, delete_aliases: bool = False) -> None:
        self._version(version_id, "write")
        self._inner.delete_version(version_id, delete_aliases=delete_aliases)

    def set_ttl(self, version_id: str, ttl_seconds: float | None) -> VersionRecord:
        self._version(version_id, "write")
        return self._inner.set_ttl(version_id, ttl_seconds)

    def use_version(self, version_id: str, run: RunRecord) -> None:
        self._version(version_id)
        self.require(run.entity, run.project, "write")
        self._inner.use_version(version_id, run)

    # -- registry links and registries --

    def link_version(
        self,
        source_version_id: str,
        entity: str,
        project: str,
        name: str,
        aliases: Sequence[str] = (),
    ) -> VersionRecord:
        self._version(source_version_id)
        if project.startswith(REGISTRY_PREFIX):
            entity = REGISTRY_ENTITY
        self.require(entity, project, "write")  # a registry is granted as a project is
        return self._inner.link_version(source_version_id, entity, project, name, aliases)

    def unlink_version(self, version_id: str) -> None:
        self._version(version_id, "write")
        self._inner.unlink_version(version_id)

    def version_links(self, version_id: str) -> list[VersionRecord]:
        self._version(version_id)
        return self._readable_versions(self._inner.version_links(version_id))

    def create_registry(
        self,
        name: str,
        *,
        description: str | None = None,
        visibility: str = "organization",
        artifact_types: Sequence[str] = (),
    ) -> RegistryRecord:
        self.require(REGISTRY_ENTITY, REGISTRY_PREFIX + name, "write")  # as creating a project
        return self._inner.create_registry(
            name, description=description, visibility=visibility, artifact_types=artifact_types
        )

    def list_registries(self) -> list[RegistryRecord]:
        return [r for r in self._inner.list_registries() if self.can_read(r.entity, r.project)]

    # -- collections --

    def get_collection(self, entity: str, project: str, name: str) -> CollectionRecord:
        self.require(entity, project)
        return self._inner.get_collection(entity, project, name)

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
        self.require(entity, project, "write")
        return self._inner.update_collection(
            entity, project, name, new_name=new_name, description=description, tags=tags
        )

    def delete_collection(self, entity: str, project: str, name: str) -> None:
        self.require(entity, project, "write")
        self._inner.delete_collection(entity, project, name)

    # -- copying between stores (cairn sync) --

    def export_versions(self, entity: str, project: str, name: str) -> list[VersionExport]:
        self.require(entity, project)
        return [
            # Lineage shows only runs of projects the key may read (as version_runs).
            dataclasses.replace(
                x, runs={role: self._readable_runs(runs) for role, runs in x.runs.items()}
            )
            for x in self._inner.export_versions(entity, project, name)
        ]

    def import_run(self, run: RunRecord) -> RunRecord:
        self.require(run.entity, run.project, "write")
        return self._inner.import_run(run)

    def import_version(self, request: ImportRequest) -> CommitResult:
        self.require(request.entity, request.project, "write")
        for _, run_entity, run_project, _ in request.runs:
            self.require(run_entity, run_project, "write")
        if request.link_of is not None:
            self.require(request.link_of[0], request.link_of[1])
        if request.base_version_id is not None:
            base = self._version(request.base_version_id)
            if (base.entity, base.project, base.name) != (
                request.entity,
                request.project,
                request.name,
            ):
                raise ValidationError(
                    f"the base version {base.qualified_name} is of another artifact"
                )
        # Everything the version refers to must be the key's to use: its pages and their blobs.
        pages, blobs, missing = self._inner.manifest_closure(request.digest)
        if not missing:
            missing = list(self._unreadable([*pages, *blobs]))
        if missing:
            return CommitResult(None, False, tuple(missing))
        return self._inner.import_version(request)

    # -- maintenance (server admins) --

    def collect_garbage(
        self, *, grace_seconds: float = DEFAULT_GRACE_SECONDS, dry_run: bool = False
    ) -> tuple[GcReport, int]:
        """The same collector as ``cairn gc --db/--store``; also sweeps abandoned uploads
        (returns the report and how many uploads it removed)."""
        self.require_admin()
        report = self._inner.collect_garbage(grace_seconds=grace_seconds, dry_run=dry_run)
        swept = 0 if dry_run else self._b.transfers.sweep(self._b.config.upload_max_age)
        return report, swept

    def verify(self) -> VerifyReport:
        self.require_admin()
        return self._inner.verify()

    # -- API keys (server admins) --

    def create_key(self, user: str, grants: Sequence[Grant]) -> tuple[str, str]:
        self.require_admin()
        return self._b.keys.create(user, grants)

    def revoke_key(self, key_id: str) -> None:
        self.require_admin()
        self._b.keys.revoke(key_id)

    def list_keys(self) -> list[dict[str, object]]:
        self.require_admin()
        return self._b.keys.list()
