"""The one authorization wrapper: the server's Service as one API key may use it.

Every REST route and every page of the web UI calls a ``ScopedService``; each permission rule of
the server is written once, in ``_key_rules.py`` (``KeyRules``: who the key is, what it may read
and do); blobs and uploads are ``_scoped_blobs.py`` (``ScopedBlobs``); the rest of the Service
(runs, versions, links, collections, sync, maintenance, API keys) is here, each method a rule
applied and a call to the server's ``LocalService``.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from cairn.core import (
    REGISTRY_ENTITY,
    REGISTRY_PREFIX,
    CollectionRecord,
    RegistryRecord,
    RunRecord,
    VersionRecord,
)
from cairn.errors import BlobNotFoundError, ValidationError
from cairn.server._auth import Grant
from cairn.server._scoped_blobs import ScopedBlobs
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

_CHECK_BATCH = 5_000  # changes of a request whose blobs are checked at a time


class ScopedService(ScopedBlobs):
    """The server's ``LocalService`` seen through one key's grants (a ``cairn.service.Service``,
    plus the server's own operations: uploads, maintenance, API keys)."""

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

    # -- versions: writes --

    def _check_target(self, request: CommitRequest | StageRequest) -> None:
        """Write access to the project; the base version readable and in the project."""
        self.require(request.entity, request.project, "write")
        if request.base_version_id is not None:
            base = self._version(request.base_version_id)
            if (base.entity, base.project) != (request.entity, request.project):
                raise ValidationError(
                    f"the base version {base.qualified_name} is in another project than"
                    f" {request.entity}/{request.project}"
                )

    def _check_write(self, request: CommitRequest | StageRequest) -> tuple[str, ...]:
        """``_check_target``; returns the blobs the changes name that the key may not use (it
        must upload them first)."""
        self._check_target(request)
        # A few thousand at a time, nothing remembered: an upsert may name 50,000 blobs
        # (the client asked which to upload just before, and that answer was remembered).
        unreadable: dict[str, None] = {}
        changes = iter(request.changes)
        while batch := list(itertools.islice(changes, _CHECK_BATCH)):
            digests = [e.digest for _, e in batch if e is not None and e.ref is None]
            unreadable.update(dict.fromkeys(self._unreadable(digests, remember=False)))
        return tuple(unreadable)

    def _unreadable_in_manifest(self, request: CommitRequest) -> tuple[str, ...]:
        """A client-written manifest (``CommitRequest.manifest``): the key must be able to read
        its pages and every blob it names, checked level by level and page by page (never the
        whole manifest). A page it may not read, the root or one below it, is refused as one
        the store lacks, before anything below it is read (``_manifests.walk``): the answer
        never names what such a page names. Not when a version of the same collection was
        committed with it (a re-log of the same tree): the project, which the key may write,
        was granted every blob it names then."""
        root = request.manifest
        assert root is not None
        if self._inner.committed_with_manifest(request.entity, request.project, request.name, root):
            return ()

        def pages(digests: list[str]) -> tuple[str, ...]:
            return self._unreadable(digests, remember=False)

        absent: list[str] = []
        for batch in self._inner.manifest_blob_batches(root, unreadable=pages):
            absent.extend(self._unreadable(batch, remember=False))
        return tuple(dict.fromkeys(absent))

    def commit(self, request: CommitRequest) -> CommitResult:
        self._check_target(request)
        if request.manifest is not None:
            missing = self._unreadable_in_manifest(request)
            if missing:
                return CommitResult(None, False, missing)
        # The blobs the changes name: checked against the key's grants inside the commit's
        # transaction, by the statement that grants them to the project (those it may not
        # read come back as missing, and nothing is committed).
        return self._inner.commit(request, reader=self.blob_reader)

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
        # Everything the version refers to must be the key's to use (its pages and their
        # blobs): checked in the import's transaction, by the statement that grants them to the
        # project (those it may not read come back as missing, and nothing is imported).
        return self._inner.import_version(request, reader=self.blob_reader)

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
