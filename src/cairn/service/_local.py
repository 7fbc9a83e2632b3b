"""LocalService: the Service in process, over a Catalog and a BlobStore.

This is the embedded store (``CAIRN_DIR``: SQLite + local blobs) and also what a server runs on
(PostgreSQL + S3). It opens the embedded store and serves blobs itself; everything else it hands
to one part per concept, each over the same ``Store`` (catalog + blobs, ``_store.py``):

* ``_commit.py``: commit a version in one step (check, build the manifest, presence check,
  one transaction); ``_manifests.py``: build, check and walk manifest pages;
* ``_distributed.py``: stage changes into a pending version, finish it;
* ``_queries.py``: resolve names, list, search; ``_versions.py``: change versions and
  collections (metadata, aliases, tags, TTL, deletion);
* ``_runs.py``: runs, their history and lineage; ``_registry.py``: registries and links;
* ``_sync.py``: export and import for ``cairn sync``; ``_maintenance.py``: gc and verify.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cairn.core import CollectionRecord, RegistryRecord, RunRecord, VersionRecord
from cairn.errors import CommError, DigestMismatchError, UsageError
from cairn.service import _commit, _manifests
from cairn.service._distributed import DistributedVersions
from cairn.service._embedded import FORMATS_READ, STORE_FORMAT, local_user, store_format
from cairn.service._maintenance import (
    DEFAULT_GRACE_SECONDS,
    GcReport,
    ProgressFactory,
    VerifyReport,
    collect_garbage,
    no_progress,
    verify_store,
)
from cairn.service._maintenance_lock import (
    MaintenanceLock,
    ThreadMaintenanceLock,
    maintenance_lock_for,
)
from cairn.service._protocol import (
    CommitRequest,
    CommitResult,
    FinishRequest,
    ImportRequest,
    StageRequest,
    VersionExport,
)
from cairn.service._queries import Queries
from cairn.service._registry import Registries
from cairn.service._runs import Runs
from cairn.service._search import SearchRequest, SearchResult
from cairn.service._store import Store
from cairn.service._sync import Sync
from cairn.service._versions import Versions
from cairn.storage import PACKED_LIMIT, BlobInfo, BlobStore, LocalBlobStore, network_filesystem

if TYPE_CHECKING:
    from cairn.catalog import BlobReader, Catalog


class LocalService:
    """A Service over a catalog and a blob store in this process."""

    def __init__(
        self,
        catalog: Catalog,
        blobs: BlobStore,
        *,
        location: str,
        entity: str | None = None,
        maintenance_lock: MaintenanceLock | None = None,
        track_blob_owners: bool = False,
        indexed_by_catalog: bool = False,
    ):
        self.catalog = catalog
        self.blobs = blobs
        # The embedded store's own blob directory (``open``), which this machine's staging
        # workers may write into directly; None: a store given to the constructor (a server's).
        self.local_blobs: LocalBlobStore | None = None
        self._entity = entity or local_user()
        # The default lock only covers this process: a store written by several processes must
        # pass a shared one (see _maintenance_lock.py).
        self._store = Store(
            catalog,
            blobs,
            location=location,
            maintenance=maintenance_lock or ThreadMaintenanceLock(),
            track_blob_owners=track_blob_owners,
            indexed_by_catalog=indexed_by_catalog,
        )
        self._runs = Runs(self._store)
        self._queries = Queries(self._store)
        self._versions = Versions(self._store)
        self._registries = Registries(self._store)
        self._distributed = DistributedVersions(self._store)
        self._sync = Sync(self._store)

    @classmethod
    def open(cls, root: str, *, allow_network_fs: bool = False) -> LocalService:
        """Open (creating if needed) the embedded store at ``root``.

        A directory on a network or FUSE file system is refused (SQLite's locks are not safe
        there) unless ``allow_network_fs`` (the settings' ``CAIRN_ALLOW_NETWORK_FS``) is true."""
        root = os.path.abspath(os.path.expanduser(root))
        try:
            os.makedirs(root, exist_ok=True)
        except OSError as exc:
            raise CommError(f"cannot create the cairn store at {root}: {exc.strerror}") from None
        fs = None if allow_network_fs else network_filesystem(root)
        if fs is not None:
            raise UsageError(
                f"the cairn store {root} is on a network file system ({fs}), where SQLite's"
                " locking is not safe and two machines could corrupt it; share a store between"
                " machines with `cairn server` (CAIRN_BASE_URL), or set"
                " CAIRN_ALLOW_NETWORK_FS=true if only one process ever writes it"
            )
        marker = os.path.join(root, "cairn-store.json")
        fmt: object = None
        if os.path.exists(marker):
            fmt = store_format(root)
            if fmt not in FORMATS_READ:
                raise UsageError(
                    f"the store at {root} has format {fmt!r}; this cairn reads formats"
                    f" {', '.join(map(str, FORMATS_READ))}: upgrade cairn"
                )
        # Blobs under 1 MiB go into packs (image-sized ones too; see storage/_local.py).
        blobs = LocalBlobStore(os.path.join(root, "blobs"), small_limit=PACKED_LIMIT)
        if fmt != STORE_FORMAT:
            if fmt == 1:
                # Small blobs move from small.sqlite into packs (the store's own upgrade, some
                # MiB per transaction); a cairn of format 1 would no longer find them.
                blobs.upgrade()
            tmp = f"{marker}.{os.getpid()}.partial"
            with open(tmp, "w") as f:
                json.dump({"format": STORE_FORMAT}, f)
            os.replace(tmp, marker)
        # A current catalog opens without SQLAlchemy, which loads at the first transaction
        # that needs it (a re-log never does: catalog/_embedded.py).
        from cairn.catalog import open_embedded_catalog

        catalog = open_embedded_catalog(os.path.join(root, "catalog.sqlite"))
        service = cls(catalog, blobs, location=root, maintenance_lock=maintenance_lock_for(root))
        service.local_blobs = blobs
        return service

    # -- identity --

    @property
    def default_entity(self) -> str:
        return self._entity

    @property
    def location(self) -> str:
        return self._store.location

    @property
    def is_local(self) -> bool:
        return True

    def close(self) -> None:
        self.blobs.close()
        self.catalog.dispose()

    # -- runs (_runs.py) --

    def start_run(self, run: RunRecord) -> RunRecord:
        return self._runs.start_run(run)

    def finish_run(
        self, entity: str, project: str, run_id: str, state: str, config: Mapping[str, Any] | None
    ) -> None:
        self._runs.finish_run(entity, project, run_id, state, config)

    def get_run(self, entity: str, project: str, run_id: str) -> RunRecord:
        return self._runs.get_run(entity, project, run_id)

    def run_versions(
        self, entity: str, project: str, run_id: str, role: str
    ) -> list[VersionRecord]:
        return self._runs.run_versions(entity, project, run_id, role)

    def list_runs(self, entity: str, project: str) -> list[RunRecord]:
        return self._runs.list_runs(entity, project)

    def delete_run(
        self, entity: str, project: str, run_id: str, *, delete_artifacts: bool = False
    ) -> None:
        self._runs.delete_run(entity, project, run_id, delete_artifacts=delete_artifacts)

    def log_history(
        self, entity: str, project: str, run_id: str, rows: Sequence[str], summary: str | None
    ) -> None:
        self._runs.log_history(entity, project, run_id, rows, summary)

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
        return self._runs.run_history(
            entity, project, run_id, min_step=min_step, max_step=max_step, limit=limit
        )

    def run_summary(self, entity: str, project: str, run_id: str) -> str:
        return self._runs.run_summary(entity, project, run_id)

    def use_version(self, version_id: str, run: RunRecord) -> None:
        self._runs.use_version(version_id, run)

    def version_runs(self, version_id: str, role: str) -> list[RunRecord]:
        return self._runs.version_runs(version_id, role)

    # -- blobs --

    def store_blobs(
        self, items: Sequence[tuple[str, bytes]], *, known_missing: bool = False
    ) -> None:
        self.blobs.put_many(items)

    def store_file(self, path: str, *, link: bool = False) -> BlobInfo:
        return self.blobs.put_file(path, link=link)

    def store_blob_file(
        self, path: str, digest: str, size: int, *, sent: Callable[[], None] | None = None
    ) -> None:
        if sent is not None:
            sent()  # nothing leaves: the copy below is this process's own work
        info = self.blobs.put_file(path)
        if info.digest != digest:
            raise DigestMismatchError(
                f"{path} was to hold blob {digest} but hashes to {info.digest}; nothing was stored"
                " under that digest"
            )

    def missing_blobs(self, digests: Sequence[str]) -> list[str]:
        return self._store.missing_blobs(digests)

    def read_blob(self, digest: str) -> bytes:
        return self.blobs.get(digest)

    def read_blobs(self, digests: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        return self.blobs.get_many(digests)

    def download_blob(self, digest: str, dest: str) -> None:
        self.blobs.copy_to(digest, dest)

    def read_blob_range(self, digest: str, start: int, length: int) -> bytes:
        return self.blobs.get_range(digest, start, length)

    def blob_path(self, digest: str) -> str | None:
        return self.blobs.local_path(digest)

    def prefetch_blobs(self, digests: Sequence[str]) -> None:
        pass  # the blobs are here already

    # -- committing (_commit.py, _manifests.py) --

    def commit(
        self,
        request: CommitRequest,
        *,
        stored: Collection[str] = (),
        sweeps: int | None = None,
        held: Sequence[tuple[str, bytes]] = (),
        reader: BlobReader | None = None,
    ) -> CommitResult:
        """``Service.commit``; ``stored``, ``sweeps`` and ``held`` (not in the protocol: this
        process's own staging only): blobs stored after ``sweeps()`` answered ``sweeps``, not
        looked up again when no gc swept since, and a few blobs to store with the commit's
        pages; ``reader`` (a server's): the key whose read grants the blobs the changes name
        must pass (``_commit.commit``)."""
        return _commit.commit(
            self._store, request, stored=stored, sweeps=sweeps, held=held, reader=reader
        )

    def sweeps(self) -> int | None:
        """How many gc sweeps this store has had, or None where it does not count them."""
        return self._store.maintenance.sweeps()

    def committed_with_manifest(self, entity: str, project: str, name: str, root: str) -> bool:
        """Whether a committed version of ``entity/project/name`` has the manifest ``root``
        (not in the protocol: its project holds every blob that manifest names, granted when
        it was committed, so a server need not check them again; see ``_commit.py``)."""
        return self._store.committed_with_digest(entity, project, name, root) is not None

    def manifest_blob_batches(
        self,
        root: str,
        batch: int = 10_000,
        unreadable: _manifests.PageCheck | None = None,
    ) -> Iterator[list[str]]:
        """The blobs a manifest needs (pages and content), in batches (not in the protocol:
        the server checks with it that a key may read every blob a commit names; a page
        ``unreadable`` names is refused before anything below it is read)."""
        return _manifests.blob_batches(self._store, root, batch, unreadable)

    # -- distributed versions (_distributed.py) --

    def stage(
        self, request: StageRequest, *, stored: Collection[str] = (), sweeps: int | None = None
    ) -> VersionRecord:
        """``Service.stage``; ``stored`` and ``sweeps`` (not in the protocol: this process's own
        staging only), as ``commit``'s."""
        return self._distributed.stage(request, stored=stored, sweeps=sweeps)

    def finish(self, request: FinishRequest) -> CommitResult:
        return self._distributed.finish(request)

    def discard_pending(self, version_id: str) -> None:
        self._distributed.discard_pending(version_id)

    def cleanup_pending(self, older_than_seconds: float) -> int:
        return self._distributed.cleanup_pending(older_than_seconds)

    # -- maintenance (not part of the Service protocol: run where the store is) --

    def collect_garbage(
        self,
        *,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
        dry_run: bool = False,
        progress: ProgressFactory = no_progress,
    ) -> GcReport:
        """Remove blobs no version refers to that are older than ``grace_seconds``.

        Safe while other processes log: see ``cairn.service._maintenance``. Versions whose TTL
        ran out are marked deleted first (not with ``dry_run``; their blobs count either way)."""
        if not dry_run:
            self.expire_versions()
        return collect_garbage(
            self.catalog,
            self.blobs,
            self._store.maintenance,
            grace_seconds=grace_seconds,
            dry_run=dry_run,
            progress=progress,
        )

    def verify(
        self,
        versions: Sequence[VersionRecord] | None = None,
        *,
        progress: ProgressFactory = no_progress,
    ) -> VerifyReport:
        """Re-hash stored blobs and check that the versions' blobs exist (all when None)."""
        return verify_store(self.catalog, self.blobs, versions, progress=progress)

    # -- queries (_queries.py) --

    def resolve(self, entity: str, project: str, name: str, label: str | None) -> VersionRecord:
        return self._queries.resolve(entity, project, name, label)

    def get_version(self, version_id: str) -> VersionRecord:
        return self._queries.get_version(version_id)

    def list_versions(
        self, entity: str, project: str, name: str, *, include_pending: bool = False
    ) -> list[VersionRecord]:
        return self._queries.list_versions(entity, project, name, include_pending=include_pending)

    def list_collections(
        self, entity: str, project: str, type_name: str | None = None
    ) -> list[CollectionRecord]:
        return self._queries.list_collections(entity, project, type_name)

    def get_collection(self, entity: str, project: str, name: str) -> CollectionRecord:
        return self._queries.get_collection(entity, project, name)

    def list_types(self, entity: str, project: str) -> list[str]:
        return self._queries.list_types(entity, project)

    def list_projects(self, entity: str | None = None) -> list[tuple[str, str]]:
        return self._queries.list_projects(entity)

    def search(self, request: SearchRequest) -> SearchResult:
        return self._queries.search(request)

    # -- changing versions and collections (_versions.py) --

    def update_version(
        self,
        version_id: str,
        *,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        aliases: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
    ) -> VersionRecord:
        return self._versions.update_version(
            version_id, description=description, metadata=metadata, aliases=aliases, tags=tags
        )

    def add_alias(self, version_id: str, alias: str) -> VersionRecord:
        return self._versions.add_alias(version_id, alias)

    def remove_alias(self, version_id: str, alias: str) -> VersionRecord:
        return self._versions.remove_alias(version_id, alias)

    def delete_version(self, version_id: str, *, delete_aliases: bool = False) -> None:
        self._versions.delete_version(version_id, delete_aliases=delete_aliases)

    def set_ttl(self, version_id: str, ttl_seconds: float | None) -> VersionRecord:
        return self._versions.set_ttl(version_id, ttl_seconds)

    def expire_versions(self) -> int:
        """Mark versions whose TTL ran out as deleted; how many (a server's collector too)."""
        return self._versions.expire_versions()

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
        return self._versions.update_collection(
            entity, project, name, new_name=new_name, description=description, tags=tags
        )

    def delete_collection(self, entity: str, project: str, name: str) -> None:
        self._versions.delete_collection(entity, project, name)

    # -- registries and links (_registry.py) --

    def link_version(
        self,
        source_version_id: str,
        entity: str,
        project: str,
        name: str,
        aliases: Sequence[str] = (),
    ) -> VersionRecord:
        return self._registries.link_version(source_version_id, entity, project, name, aliases)

    def unlink_version(self, version_id: str) -> None:
        self._registries.unlink_version(version_id)

    def version_links(self, version_id: str) -> list[VersionRecord]:
        return self._registries.version_links(version_id)

    def create_registry(
        self,
        name: str,
        *,
        description: str | None = None,
        visibility: str = "organization",
        artifact_types: Sequence[str] = (),
    ) -> RegistryRecord:
        return self._registries.create_registry(
            name, description=description, visibility=visibility, artifact_types=artifact_types
        )

    def list_registries(self) -> list[RegistryRecord]:
        return self._registries.list_registries()

    # -- copying between stores (cairn sync; _sync.py) --

    def export_versions(self, entity: str, project: str, name: str) -> list[VersionExport]:
        return self._sync.export_versions(entity, project, name)

    def import_run(self, run: RunRecord) -> RunRecord:
        return self._sync.import_run(run)

    def import_version(
        self, request: ImportRequest, *, reader: BlobReader | None = None
    ) -> CommitResult:
        """``Service.import_version``; ``reader`` (a server's, not in the protocol): the key
        whose read grants every page and blob of the manifest must pass (``_sync.py``)."""
        return self._sync.import_version(request, reader)
