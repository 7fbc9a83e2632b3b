"""LocalService: the Service in process, over a Catalog and a BlobStore.

This is the embedded store (``CAIRN_DIR``: SQLite + local blobs) and also what a server runs on
(PostgreSQL + S3). Manifests are built here from the entries a client sends, so the rules of the
format live in one place.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import select

from cairn.catalog import Catalog, Tx
from cairn.catalog import _search as catalog_search
from cairn.core import (
    COMMITTED,
    DELETED,
    INT_RANGE,
    LATEST,
    PENDING,
    REGISTRY_ENTITY,
    REGISTRY_PREFIX,
    Change,
    CollectionRecord,
    Index,
    Leaf,
    ManifestEntry,
    PageReader,
    PageRef,
    RegistryRecord,
    RunRecord,
    TreeBuilder,
    VersionRecord,
    build_tree,
    check_digest,
    check_history_rows,
    check_json_value,
    check_summary,
    check_ttl_allowed,
    parse_query,
    update_tree,
    validate_alias,
    validate_aliases,
    validate_artifact_name,
    validate_project,
    validate_tags,
    validate_type,
)
from cairn.errors import (
    ArtifactNotFoundError,
    BlobNotFoundError,
    CommError,
    ConflictError,
    DigestMismatchError,
    ManifestFormatError,
    UsageError,
    ValidationError,
)
from cairn.service._embedded import FORMATS_READ, STORE_FORMAT, local_user, store_format
from cairn.service._maintenance import (
    DEFAULT_GRACE_SECONDS,
    GcReport,
    MaintenanceLock,
    ProgressFactory,
    ThreadMaintenanceLock,
    VerifyReport,
    collect_garbage,
    maintenance_lock_for,
    no_progress,
    verify_store,
)
from cairn.service._protocol import (
    CommitRequest,
    CommitResult,
    FinishRequest,
    ImportRequest,
    StageRequest,
    VersionExport,
)
from cairn.service._search import SearchRequest, SearchResult
from cairn.storage import BlobInfo, BlobStore, LocalBlobStore, network_filesystem

_FINISH_ATTEMPTS = 20  # rounds of a finish whose staged changes keep changing (see _finish)

_ROLES = ("output", "input", "writer")


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


def _blob_digests(entries: Sequence[ManifestEntry | None]) -> list[str]:
    return list({e.digest for e in entries if e is not None and e.ref is None})


def _discard_page(digest: str, data: bytes) -> None:
    """A page sink that keeps nothing (a manifest rebuilt only for its digest)."""


def _kept_changing(request: FinishRequest) -> ConflictError:
    return ConflictError(
        f"distributed version {request.distributed_id!r} of {request.name} kept changing while"
        " it was finished; finish it again"
    )


def _label(
    tx: Tx,
    collection_id: int,
    version_id: str,
    aliases: Sequence[str],
    tags: Sequence[str],
    run_pk: int | None,
) -> None:
    """What every commit does to the version it committed (or found identical): the aliases
    move to it, it gets the tags, and the committing run (if any) is recorded as its maker."""
    for alias in aliases:
        tx.aliases.assign(collection_id, alias, version_id)
    tx.tags.add(version_id, tags)
    if run_pk is not None:
        tx.lineage.add(version_id, run_pk, "output")


def _check_expected_alias(tx: Tx, cid: int, name: str, expect: tuple[str, str | None]) -> None:
    """Refuse the commit unless ``alias`` still names the expected version (run in the commit's
    own transaction, after the collection is locked, so no other commit can slip in between)."""
    alias, expected = expect
    now = tx.versions.resolve(cid, alias)
    if now != expected:
        was = "no version" if expected is None else f"version {expected}"
        moved = f"version {now}" if now is not None else "no version"
        raise ConflictError(
            f"{name}:{alias} was expected to name {was} but names {moved} (another writer moved"
            " it); nothing was committed: read the new version and write again"
        )


def _check_request(request: CommitRequest | StageRequest) -> None:
    """A request's names, metadata and sizes, checked by the rules of ``cairn.core`` before
    anything is written (the server runs every request through here too, so the embedded store
    and a server accept exactly the same things, and nothing unreadable is committed)."""
    validate_project(request.entity, "entity")
    validate_project(request.project)
    validate_artifact_name(request.name)
    validate_type(request.type)
    validate_aliases(list(request.aliases))
    validate_tags(list(getattr(request, "tags", ())))
    expect = getattr(request, "expect_alias", None)
    if expect is not None:
        if not isinstance(expect, tuple) or len(expect) != 2:
            raise ValidationError(
                f"expect_alias must be (alias, version id or None), got {expect!r}"
            )
        validate_alias(expect[0])
        if expect[1] is not None and not isinstance(expect[1], str):
            raise ValidationError(
                f"expect_alias: the version id must be a string, got {expect[1]!r}"
            )
    if request.metadata is not None:
        check_json_value(dict(request.metadata), "metadata")
    for path, entry in request.changes:
        if entry is not None and entry.size is not None and entry.size > INT_RANGE[1]:
            raise ValidationError(f"entry {path!r}: size {entry.size} is beyond 64 bits")


_TRUE = ("1", "true", "yes", "on")


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
    ):
        self.catalog = catalog
        self.blobs = blobs
        self._location = location
        self._entity = entity or local_user()
        # A server records which project refers to which blob (files and manifest pages), so a
        # key reads only blobs of projects it may read. The embedded store has one user: no need.
        self._owners = track_blob_owners
        self._reader = PageReader(self.blobs.get, capacity=512)
        # Shared by commits, exclusive for gc's sweep (see _maintenance.py). The default only
        # covers this process: a store written by several processes must pass a shared lock.
        self._maintenance = maintenance_lock or ThreadMaintenanceLock()

    @classmethod
    def open(cls, root: str, *, allow_network_fs: bool | None = None) -> LocalService:
        """Open (creating if needed) the embedded store at ``root``.

        A directory on a network or FUSE file system is refused (SQLite's locks are not safe
        there) unless ``allow_network_fs`` (default: ``CAIRN_ALLOW_NETWORK_FS``) is true."""
        root = os.path.abspath(os.path.expanduser(root))
        try:
            os.makedirs(root, exist_ok=True)
        except OSError as exc:
            raise CommError(f"cannot create the cairn store at {root}: {exc.strerror}") from None
        if allow_network_fs is None:
            allow_network_fs = os.environ.get("CAIRN_ALLOW_NETWORK_FS", "").lower() in _TRUE
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
        blobs = LocalBlobStore(os.path.join(root, "blobs"))
        if fmt != STORE_FORMAT:
            if fmt == 1:
                # Small blobs move from small.sqlite into packs (the store's own upgrade, some
                # MiB per transaction); a cairn of format 1 would no longer find them.
                blobs.upgrade()
            tmp = f"{marker}.{os.getpid()}.partial"
            with open(tmp, "w") as f:
                json.dump({"format": STORE_FORMAT}, f)
            os.replace(tmp, marker)
        catalog = Catalog("sqlite:///" + os.path.join(root, "catalog.sqlite"))
        return cls(catalog, blobs, location=root, maintenance_lock=maintenance_lock_for(root))

    # -- identity --

    @property
    def default_entity(self) -> str:
        return self._entity

    @property
    def location(self) -> str:
        return self._location

    @property
    def is_local(self) -> bool:
        return True

    def close(self) -> None:
        self.blobs.close()
        self.catalog.dispose()

    # -- runs --

    def start_run(self, run: RunRecord) -> RunRecord:
        validate_project(run.entity, "entity")
        validate_project(run.project)
        check_json_value(dict(run.config), "config")

        def fn(tx: Tx) -> RunRecord:
            pid = tx.projects.id_of(run.entity, run.project, create=True)
            assert pid is not None
            tx.runs.insert(pid, run)
            return tx.runs.record(pid, run.id)

        return self.catalog.write(fn)

    def finish_run(
        self, entity: str, project: str, run_id: str, state: str, config: Mapping[str, Any] | None
    ) -> None:
        if config is not None:
            check_json_value(dict(config), "config")

        def fn(tx: Tx) -> None:
            pk = self._run_pk(tx, entity, project, run_id)
            tx.runs.set_state(pk, state, config)

        self.catalog.write(fn)

    def get_run(self, entity: str, project: str, run_id: str) -> RunRecord:
        def fn(tx: Tx) -> RunRecord:
            pid = self._project(tx, entity, project)
            return tx.runs.record(pid, run_id)

        return self.catalog.read(fn)

    def run_versions(
        self, entity: str, project: str, run_id: str, role: str
    ) -> list[VersionRecord]:
        def fn(tx: Tx) -> list[VersionRecord]:
            pk = self._run_pk(tx, entity, project, run_id)
            return tx.versions.records(tx.lineage.versions_of(pk, role))

        return self.catalog.read(fn)

    def list_runs(self, entity: str, project: str) -> list[RunRecord]:
        """The runs of a project, oldest first (none if the project does not exist)."""
        from cairn.catalog import _schema as schema

        def fn(tx: Tx) -> list[RunRecord]:
            pid = tx.projects.id_of(entity, project, create=False)
            return [] if pid is None else tx.runs.records(schema.runs.c.project_id == pid)

        return self.catalog.read(fn)

    def delete_run(
        self, entity: str, project: str, run_id: str, *, delete_artifacts: bool = False
    ) -> None:
        """Delete a run; with ``delete_artifacts`` the versions it logged are deleted too (their
        aliases with them), otherwise they stay, with no logging run."""

        def fn(tx: Tx) -> None:
            pk = self._run_pk(tx, entity, project, run_id)
            if delete_artifacts:
                for vid in tx.lineage.versions_of(pk, "output"):
                    self._delete_version_in(tx, vid, delete_aliases=True)
            tx.runs.delete(pk)

        self.catalog.write(fn)

    def log_history(
        self, entity: str, project: str, run_id: str, rows: Sequence[str], summary: str | None
    ) -> None:
        checked = check_history_rows(rows)
        if summary is not None:
            check_summary(summary)

        def fn(tx: Tx) -> None:
            pk = self._run_pk(tx, entity, project, run_id)
            tx.history.add(pk, checked)
            if summary is not None:
                tx.history.set_summary(pk, summary)

        self.catalog.write(fn)

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
        if limit is not None and limit < 0:
            raise ValidationError(f"limit must be 0 or more, not {limit}")

        def fn(tx: Tx) -> list[str]:
            pk = self._run_pk(tx, entity, project, run_id)
            return tx.history.rows(pk, min_step, max_step, limit)

        return self.catalog.read(fn)

    def run_summary(self, entity: str, project: str, run_id: str) -> str:
        return self.catalog.read(
            lambda tx: tx.history.summary(self._run_pk(tx, entity, project, run_id))
        )

    def _project(self, tx: Tx, entity: str, project: str) -> int:
        pid = tx.projects.id_of(entity, project, create=False)
        if pid is None:
            raise ArtifactNotFoundError(f"project {entity}/{project} not found")
        return pid

    def _run_pk(self, tx: Tx, entity: str, project: str, run_id: str) -> int:
        pid = self._project(tx, entity, project)
        return tx.runs.require_pk(pid, run_id)

    def _maybe_run_pk(self, tx: Tx, project_id: int, run_id: str | None) -> int | None:
        return None if run_id is None else tx.runs.require_pk(project_id, run_id)

    # -- blobs --

    def store_blobs(self, items: Sequence[tuple[str, bytes]]) -> None:
        self.blobs.put_many(items)

    def store_file(self, path: str, *, link: bool = False) -> BlobInfo:
        return self.blobs.put_file(path, link=link)

    def store_blob_file(self, path: str, digest: str, size: int) -> None:
        info = self.blobs.put_file(path)
        if info.digest != digest:
            raise DigestMismatchError(
                f"{path} was to hold blob {digest} but hashes to {info.digest}; nothing was stored"
                " under that digest"
            )

    def missing_blobs(self, digests: Sequence[str]) -> list[str]:
        present = self.blobs.has_many(digests)
        return [d for d in dict.fromkeys(digests) if d not in present]

    def read_blob(self, digest: str) -> bytes:
        return self.blobs.get(digest)

    def read_blobs(self, digests: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        if isinstance(self.blobs, LocalBlobStore):
            yield from self.blobs.get_many(digests)
            return
        for digest in digests:
            yield digest, self.blobs.get(digest)

    def download_blob(self, digest: str, dest: str) -> None:
        self.blobs.copy_to(digest, dest)

    def read_blob_range(self, digest: str, start: int, length: int) -> bytes:
        return self.blobs.get_range(digest, start, length)

    def blob_path(self, digest: str) -> str | None:
        return self.blobs.local_path(digest)

    def prefetch_blobs(self, digests: Sequence[str]) -> None:
        pass  # the blobs are here already

    # -- committing --

    def _build(
        self, base_root: str | None, changes: Sequence[tuple[str, ManifestEntry | None]]
    ) -> tuple[PageRef, dict[str, bytes]]:
        """Build the new manifest in memory: (root, pages written)."""
        pages: dict[str, bytes] = {}

        def put(digest: str, data: bytes) -> None:
            pages[digest] = data

        if base_root is None:
            if any(e is None for _, e in changes):
                raise ValidationError(
                    "a new artifact cannot remove entries; it has no base version"
                )
            root = build_tree((e for _, e in changes if e is not None), put)
        else:
            root = update_tree(self._reader, base_root, changes, put)
        if root.size > INT_RANGE[1]:
            raise ValidationError(f"the version's total size ({root.size} bytes) is beyond 64 bits")
        return root, pages

    def manifest_blob_batches(self, root: str, batch: int = 10_000) -> Iterator[list[str]]:
        """The blobs a manifest needs (its pages, and its entries' stored content), in batches:
        read page by page, never the whole manifest at once."""
        reader = PageReader(self._manifest_page, capacity=8)
        leaves = reader.leaves(root)
        out: list[str] = [root, *self._index_pages(reader, root)]
        for ref in leaves:
            node = reader.node(ref.digest)
            if not isinstance(node, Leaf):
                raise ManifestFormatError(f"manifest page {ref.digest} is not a leaf page")
            out.append(ref.digest)
            out.extend(e.digest for e in node.entries if e.ref is None)
            if len(out) >= batch:
                yield list(dict.fromkeys(out))
                out = []
        if out:
            yield list(dict.fromkeys(out))

    def _index_pages(self, reader: PageReader, root: str) -> list[str]:
        top = reader.root_ref(root)
        found: list[str] = []
        stack = [top] if top.level > 1 else []
        while stack:
            node = reader.node(stack.pop().digest)
            assert isinstance(node, Index)
            for child in node.children:
                if child.level >= 1:
                    found.append(child.digest)
                    if child.level > 1:
                        stack.append(child)
        return found

    def _manifest_page(self, digest: str) -> bytes:
        try:
            return self.blobs.get(check_digest(digest))
        except BlobNotFoundError:
            raise ValidationError(
                f"manifest page {digest} is not in the store at {self.location}: store the"
                " manifest's pages before committing it (log the artifact again)"
            ) from None

    def check_manifest(self, root: str) -> list[str]:
        """Check a manifest a client wrote as blobs (``CommitRequest.manifest``), page by page:
        every page present and well formed, paths safe, sorted and unique, and cut exactly as
        cairn cuts manifests (rebuilt and compared by digest, so equal contents keep equal
        digests). Returns the digests of its entries' content the store lacks."""
        reader = PageReader(self._manifest_page, capacity=8)
        builder = TreeBuilder(_discard_page)
        missing: list[str] = []
        pending: list[str] = []
        try:
            for ref in reader.leaves(root):
                node = reader.node(ref.digest)
                if not isinstance(node, Leaf):
                    raise ManifestFormatError(f"manifest page {ref.digest} is not a leaf page")
                builder.extend(node.entries)
                pending.extend(e.digest for e in node.entries if e.ref is None)
                if len(pending) >= 20_000:
                    missing += self.missing_blobs(list(dict.fromkeys(pending)))
                    pending = []
            built = builder.finish()
        except ManifestFormatError:
            raise
        except ValueError as exc:
            raise ManifestFormatError(f"manifest {root} refused: {exc}") from None
        if pending:
            missing += self.missing_blobs(list(dict.fromkeys(pending)))
        if built.digest != root:
            raise ManifestFormatError(
                f"manifest {root} refused: its pages are not cut as cairn cuts manifests"
                f" (rebuilt from its entries it is {built.digest})"
            )
        if built.size > INT_RANGE[1]:
            raise ValidationError(
                f"the version's total size ({built.size} bytes) is beyond 64 bits"
            )
        return list(dict.fromkeys(missing))

    def _persist_pages(self, pages: dict[str, bytes]) -> None:
        if pages:
            present = self.blobs.has_many(pages)
            self.blobs.put_many([(d, b) for d, b in pages.items() if d not in present])

    def _grant(self, tx: Tx, project_id: int, digests: Iterable[str]) -> None:
        if self._owners:
            tx.grants.add(project_id, digests)

    def _existing_with_digest(
        self, entity: str, project: str, name: str, digest: str
    ) -> str | None:
        def fn(tx: Tx) -> str | None:
            pid = tx.projects.id_of(entity, project, create=False)
            cid = None if pid is None else tx.collections.id_of(pid, name)
            return None if cid is None else tx.versions.committed_with_digest(cid, digest)

        return self.catalog.read(fn)

    def commit(self, request: CommitRequest) -> CommitResult:
        _check_request(request)
        # From the blob check to the catalog commit, gc may not sweep (see _maintenance.py).
        with self._maintenance.shared():
            return self._commit(request)

    def _commit(self, request: CommitRequest) -> CommitResult:
        validate_aliases(request.aliases)
        base_root: str | None = None
        manifest_missing: list[str] = []
        if request.manifest is not None:
            if request.base_version_id is not None:
                raise ValidationError(
                    "a commit applies its changes to a base version or to a manifest, not both"
                )
            # Re-logging the same tree (or changes to it): a version of this collection has the
            # manifest already, checked when it was committed (and its blobs kept since): no
            # need to read it again.
            known = self._existing_with_digest(
                request.entity, request.project, request.name, request.manifest
            )
            if not known:
                manifest_missing = self.check_manifest(request.manifest)
            base_root = request.manifest
        if request.base_version_id is not None:
            base = self.get_version(request.base_version_id)
            if base.state != COMMITTED or base.digest is None:
                raise UsageError(f"the base version {base.qualified_name} is not committed")
            if base.name != request.name or base.project != request.project:
                raise ValidationError(
                    f"a draft of {base.qualified_name} must be logged as"
                    f" {base.project}/{base.name}, not {request.project}/{request.name}"
                )
            base_root = base.digest
        root, pages = self._build(base_root, request.changes)
        existing = self._existing_with_digest(
            request.entity, request.project, request.name, root.digest
        )
        if existing is None:
            missing = self.missing_blobs(_blob_digests([e for _, e in request.changes]))
            missing = list(dict.fromkeys([*manifest_missing, *missing]))
            if missing:
                return CommitResult(None, False, tuple(missing))
            self._persist_pages(pages)

        def fn(tx: Tx) -> CommitResult:
            pid = tx.projects.id_of(request.entity, request.project, create=True)
            assert pid is not None
            run_pk = self._maybe_run_pk(tx, pid, request.run_id)
            cid, next_index = tx.collections.lock(
                pid, request.name, request.type, request.description
            )
            if request.expect_alias is not None:
                _check_expected_alias(tx, cid, request.name, request.expect_alias)
            self._grant(tx, pid, [*_blob_digests([e for _, e in request.changes]), *pages])
            if self._owners and request.manifest is not None:
                for batch in self.manifest_blob_batches(request.manifest):
                    tx.grants.add(pid, batch)
            found = tx.versions.committed_with_digest(cid, root.digest)
            if found is not None:
                # Identical content: no new version; it gets the aliases and "latest".
                _label(tx, cid, found, [*request.aliases, LATEST], request.tags, run_pk)
                return CommitResult(tx.versions.record(found), created=False)
            vid = tx.versions.insert(
                collection_id=cid,
                state=COMMITTED,
                index=next_index,
                digest=root.digest,
                size=root.size,
                file_count=root.entry_count,
                metadata=request.metadata,
                description=request.description,
                created_by=run_pk,
                base_version_id=request.base_version_id,
            )
            _label(tx, cid, vid, [*request.aliases, LATEST], request.tags, run_pk)
            return CommitResult(tx.versions.record(vid), created=True)

        result = self.catalog.write(fn)
        if existing is not None and result.created:
            # The duplicate vanished between the check and the commit (deleted): pages are needed.
            self._persist_pages(pages)
        return result

    # -- distributed versions --

    def _stage_in_tx(
        self,
        tx: Tx,
        request: StageRequest | FinishRequest,
    ) -> tuple[int, int, str, int | None]:
        """Stage changes into the PENDING version, creating it.

        Returns (collection id, next version number, version id, run pk); the collection and the
        version rows stay locked until the transaction ends.
        """
        pid = tx.projects.id_of(request.entity, request.project, create=True)
        assert pid is not None
        run_pk = self._maybe_run_pk(tx, pid, request.run_id)
        cid, next_index = tx.collections.lock(pid, request.name, request.type, request.description)
        vid = tx.pending.find(cid, request.distributed_id)
        if vid is None:
            vid = tx.versions.insert(
                collection_id=cid,
                state=PENDING,
                index=None,
                digest=None,
                size=0,
                file_count=0,
                metadata=request.metadata or {},
                description=request.description,
                created_by=None,
                distributed_id=request.distributed_id,
                base_version_id=request.base_version_id,
            )
        else:
            base = tx.versions.record(vid).base_version_id
            if base != request.base_version_id:
                raise ValidationError(
                    f"distributed version {request.distributed_id!r} of {request.name} is based on"
                    f" {base or 'nothing'}; every upsert into it must use the same base version"
                )
            if request.metadata or request.description is not None:
                tx.versions.update(vid, description=request.description, metadata=request.metadata)
        tx.pending.stage(vid, request.changes, run_pk)
        tx.pending.add_aliases(vid, request.aliases)
        self._grant(tx, pid, _blob_digests([e for _, e in request.changes]))
        if run_pk is not None and (request.changes or not isinstance(request, FinishRequest)):
            tx.lineage.add(
                vid, run_pk, "writer"
            )  # a finisher that brings nothing: see _commit_staged
        return cid, next_index, vid, run_pk

    def _require_blobs(
        self, changes: Sequence[tuple[str, ManifestEntry | None]]
    ) -> tuple[str, ...]:
        return tuple(self.missing_blobs(_blob_digests([e for _, e in changes])))

    def _check_base(self, request: StageRequest | FinishRequest) -> None:
        validate_aliases(request.aliases)
        if request.base_version_id is None and any(e is None for _, e in request.changes):
            raise ValidationError("only a draft (a version with a base) can remove entries")

    def stage(self, request: StageRequest) -> VersionRecord:
        _check_request(request)
        with self._maintenance.shared():
            return self._stage(request)

    def _stage(self, request: StageRequest) -> VersionRecord:
        self._check_base(request)
        missing = self._require_blobs(request.changes)
        if missing:  # as a server answers: the SDK stores them again and retries
            raise BlobNotFoundError(
                f"{len(missing)} blobs must be uploaded before staging, e.g. {missing[0]}"
            )

        def fn(tx: Tx) -> VersionRecord:
            _, _, vid, _ = self._stage_in_tx(tx, request)
            return tx.versions.record(vid)

        return self.catalog.write(fn)

    def finish(self, request: FinishRequest) -> CommitResult:
        _check_request(request)
        with self._maintenance.shared():
            return self._finish(request)

    def _finish(self, request: FinishRequest) -> CommitResult:
        """Stage the last changes, then commit the pending version with every staged change.

        No blob is read or written inside a catalog transaction: a server's blob index
        (``CatalogBlobStore``) writes through the same catalog, and on SQLite (one writer at a
        time) a blob write inside a write transaction waits for that transaction forever. So
        the manifest is built between two transactions, and the second one commits it only if
        the staged changes are still those it was built from (else it is built again)."""
        self._check_base(request)
        missing = self._require_blobs(request.changes)
        if missing:
            return CommitResult(None, False, missing)
        changes: list[Change] | None = None  # None: stage first (again, if another finished)
        vid = base_root = ""
        start_new = False
        for _ in range(_FINISH_ATTEMPTS):
            if changes is None:
                staged = self.catalog.write(
                    lambda tx: self._stage_for_finish(tx, request, start_new=start_new)  # noqa: B023
                )
                if staged is None:  # nothing pending and a version committed: a repeated finish?
                    done = self._already_finished(request)
                    if done is not None:
                        return done
                    start_new = True  # it brings something new: that is a new version
                    continue
                vid, base_root, changes = staged
            root, pages = self._build(base_root or None, changes)
            self._persist_pages(pages)
            built = changes
            outcome = self.catalog.write(
                lambda tx: self._commit_staged(tx, request, vid, built, root, pages)  # noqa: B023
            )
            if isinstance(outcome, CommitResult):
                return outcome
            changes = outcome
        raise _kept_changing(request)

    def _stage_for_finish(
        self, tx: Tx, request: FinishRequest, *, start_new: bool
    ) -> tuple[str, str, list[Change]] | None:
        """Stage the request's changes: (pending version id, base manifest root or "", every
        change staged into it). None, staging nothing, when no version of the distributed id
        is pending and one is committed, unless ``start_new``: see ``_already_finished``."""
        if not start_new:
            pid = tx.projects.id_of(request.entity, request.project, create=True)
            assert pid is not None
            cid, _ = tx.collections.lock(pid, request.name, request.type, request.description)
            if tx.pending.find(cid, request.distributed_id) is None and (
                tx.pending.last_committed(cid, request.distributed_id) is not None
            ):
                return None
        _, _, vid, _ = self._stage_in_tx(tx, request)
        base_root = ""
        if request.base_version_id is not None:
            base_root = tx.versions.record(request.base_version_id).digest or ""
        return vid, base_root, tx.pending.staged(vid)

    def _commit_staged(
        self,
        tx: Tx,
        request: FinishRequest,
        vid: str,
        changes: list[Change],
        root: PageRef,
        pages: Mapping[str, bytes],
    ) -> CommitResult | list[Change] | None:
        """Commit ``vid`` as built from ``changes``. Returns the staged changes instead when
        they changed meanwhile (build again), None when ``vid`` was finished by another."""
        pid = tx.projects.id_of(request.entity, request.project, create=True)
        assert pid is not None
        cid, next_index = tx.collections.lock(pid, request.name, request.type, request.description)
        if tx.pending.find(cid, request.distributed_id) != vid:
            return None
        staged = tx.pending.staged(vid)
        if staged != changes:
            return staged
        run_pk = self._maybe_run_pk(tx, pid, request.run_id)
        if run_pk is not None:  # the run that commits wrote the version, whatever it brought
            tx.lineage.add(vid, run_pk, "writer")
        self._grant(tx, pid, pages)
        found = tx.versions.committed_with_digest(cid, root.digest)
        target = vid
        aliases = [*tx.pending.aliases(vid), *request.aliases]
        if found is not None:
            # Same content as a committed version: that one gets the aliases; the pending
            # version is folded into it (its writers become writers of the existing one).
            tx.lineage.copy(vid, found, "writer")
            tx.pending.drop(vid)
            target = found
        else:
            tx.pending.commit(
                vid,
                index=next_index,
                digest=root.digest,
                size=root.size,
                file_count=root.entry_count,
                created_by=run_pk,
                metadata=request.metadata,
                description=request.description,
            )
        _label(tx, cid, target, [*aliases, LATEST], request.tags, run_pk)
        return CommitResult(tx.versions.record(target), created=found is None)

    def _already_finished(self, request: FinishRequest) -> CommitResult | None:
        """The one rule for a repeated finish of a distributed version (a retry after a lost
        answer, or two finishers racing), for the embedded store and a server alike.

        When no version of the id is pending and the newest committed one is there: if this run
        committed it, the finish is a retry and gets the same answer (``created``); if it has
        every change the request brings, it gets the request's aliases and tags (not
        ``created``). Otherwise (None) the finish starts a new version."""

        def newest(tx: Tx) -> VersionRecord | None:
            pid, cid = tx.collections.locate(request.entity, request.project, request.name)
            if pid is None or cid is None:
                return None
            if tx.pending.find(cid, request.distributed_id) is not None:
                return None
            done = tx.pending.last_committed(cid, request.distributed_id)
            return None if done is None else tx.versions.record(done)

        for _ in range(_FINISH_ATTEMPTS):
            record = self.catalog.read(newest)
            if record is None or record.digest is None:
                return None
            if request.run_id is not None and record.created_by == request.run_id:
                return CommitResult(record, created=True)
            for path, entry in request.changes:  # manifest pages are blobs: read outside the tx
                if self._reader.get(record.digest, path) != entry:
                    return None  # it brings something new: that is a new version

            def apply(tx: Tx, record: VersionRecord = record) -> CommitResult | None:
                pid = tx.projects.id_of(request.entity, request.project, create=False)
                assert pid is not None
                cid, _ = tx.collections.lock(pid, request.name, request.type, request.description)
                if tx.pending.find(cid, request.distributed_id) is not None or (
                    tx.pending.last_committed(cid, request.distributed_id) != record.id
                ):
                    return None  # another finish or upsert got in meanwhile: decide again
                run_pk = self._maybe_run_pk(tx, pid, request.run_id)
                _label(tx, cid, record.id, request.aliases, request.tags, run_pk)
                return CommitResult(tx.versions.record(record.id), created=False)

            result = self.catalog.write(apply)
            if result is not None:
                return result
        raise _kept_changing(request)

    def discard_pending(self, version_id: str) -> None:
        self.catalog.write(lambda tx: tx.pending.drop(version_id))

    def cleanup_pending(self, older_than_seconds: float) -> int:
        cutoff = time.time() - older_than_seconds

        def fn(tx: Tx) -> int:
            ids = tx.pending.older_than(cutoff)
            for vid in ids:
                tx.pending.drop(vid)
            return len(ids)

        return self.catalog.write(fn)

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
            self._maintenance,
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

    # -- queries --

    def resolve(self, entity: str, project: str, name: str, label: str | None) -> VersionRecord:
        def fn(tx: Tx) -> VersionRecord:
            where = f"{entity}/{project}"
            pid, cid = tx.collections.locate(entity, project, name)
            if pid is None:
                raise ArtifactNotFoundError(
                    f"artifact {name}:{label or LATEST} not found: project {where} does not exist"
                )
            if cid is None:
                cid = tx.collections.require(pid, name, where)  # raises: not found
            vid = tx.versions.resolve(cid, label)
            if vid is None:
                raise ArtifactNotFoundError(
                    f"artifact {where}/{name} has no version or alias {label or LATEST!r}"
                )
            return tx.versions.record(vid)

        return self.catalog.read(fn)

    def get_version(self, version_id: str) -> VersionRecord:
        return self.catalog.read(lambda tx: tx.versions.record(version_id))

    def list_versions(
        self, entity: str, project: str, name: str, *, include_pending: bool = False
    ) -> list[VersionRecord]:
        def fn(tx: Tx) -> list[VersionRecord]:
            pid = self._project(tx, entity, project)
            cid = tx.collections.require(pid, name, f"{entity}/{project}")
            return tx.versions.records(tx.versions.ids(cid, include_pending=include_pending))

        return self.catalog.read(fn)

    def list_collections(
        self, entity: str, project: str, type_name: str | None = None
    ) -> list[CollectionRecord]:
        def fn(tx: Tx) -> list[CollectionRecord]:
            pid = tx.projects.id_of(entity, project, create=False)
            return [] if pid is None else tx.collections.records(pid, type_name)

        return self.catalog.read(fn)

    def list_types(self, entity: str, project: str) -> list[str]:
        def fn(tx: Tx) -> list[str]:
            pid = tx.projects.id_of(entity, project, create=False)
            return [] if pid is None else tx.collections.types(pid)

        return self.catalog.read(fn)

    def list_projects(self, entity: str | None = None) -> list[tuple[str, str]]:
        return self.catalog.read(lambda tx: tx.projects.names(entity))

    # -- changing committed versions (metadata only; files never change) --

    def _committed(self, tx: Tx, version_id: str) -> VersionRecord:
        rec = tx.versions.record(version_id)
        if rec.state != COMMITTED:
            raise UsageError(f"version {rec.qualified_name} is {rec.state}; only committed ones")
        return rec

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
            rec = self._committed(tx, version_id)
            tx.versions.update(version_id, description=description, metadata=metadata)
            if aliases is not None:
                tx.aliases.replace(rec.collection_id, version_id, aliases)
            if tags is not None:
                tx.tags.replace(version_id, tags)
            return tx.versions.record(version_id)

        return self.catalog.write(fn)

    def add_alias(self, version_id: str, alias: str) -> VersionRecord:
        validate_alias(alias)

        def fn(tx: Tx) -> VersionRecord:
            rec = self._committed(tx, version_id)
            tx.aliases.assign(rec.collection_id, alias, version_id)
            return tx.versions.record(version_id)

        return self.catalog.write(fn)

    def remove_alias(self, version_id: str, alias: str) -> VersionRecord:
        def fn(tx: Tx) -> VersionRecord:
            rec = self._committed(tx, version_id)
            if not tx.aliases.remove(rec.collection_id, alias, version_id):
                raise ArtifactNotFoundError(f"{rec.qualified_name} has no alias {alias!r}")
            return tx.versions.record(version_id)

        return self.catalog.write(fn)

    def delete_version(self, version_id: str, *, delete_aliases: bool = False) -> None:
        self.catalog.write(
            lambda tx: self._delete_version_in(tx, version_id, delete_aliases=delete_aliases)
        )

    def _delete_version_in(self, tx: Tx, version_id: str, *, delete_aliases: bool) -> None:
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

    # -- registry links and registries (W&B's link_artifact, Registry) --

    def _registry_project(self, tx: Tx, project: str, *, create_default: bool) -> int:
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

        def fn(tx: Tx) -> VersionRecord:
            src = self._committed(tx, source_version_id)
            if src.source_version_id is not None:  # a link of a link names the real source
                src = self._committed(tx, src.source_version_id)
            if project.startswith(REGISTRY_PREFIX):
                pid = self._registry_project(tx, project, create_default=True)
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
                if self._owners:
                    self._grant(tx, pid, self._version_blobs(src.digest))
            for alias in (*aliases, LATEST):
                tx.aliases.assign(cid, alias, vid)
            return tx.versions.record(vid)

        return self.catalog.write(fn)

    def _version_blobs(self, root: str) -> list[str]:
        """Every page and file blob a manifest names (what a reader of a link must reach)."""
        out: list[str] = []
        stack = [root]
        while stack:
            digest = stack.pop()
            out.append(digest)
            node = self._reader.node(digest)
            if isinstance(node, Leaf):
                out.extend(e.digest for e in node.entries if e.ref is None)
            else:
                stack.extend(c.digest for c in node.children)
        return out

    def unlink_version(self, version_id: str) -> None:
        """Remove a link (the source version stays)."""

        def fn(tx: Tx) -> None:
            rec = self._committed(tx, version_id)
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

        self.catalog.write(fn)

    def version_links(self, version_id: str) -> list[VersionRecord]:
        """The live links of a version (where it was linked to)."""
        from cairn.catalog import _schema as schema

        def fn(tx: Tx) -> list[VersionRecord]:
            v = schema.versions.c
            q = select(v.id).where(v.source_version_id == version_id, v.state == COMMITTED)
            return tx.versions.records([str(r[0]) for r in tx.conn.execute(q)])

        return self.catalog.read(fn)

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

        return self.catalog.write(fn)

    def list_registries(self) -> list[RegistryRecord]:
        def fn(tx: Tx) -> list[RegistryRecord]:
            for name in DEFAULT_REGISTRIES:
                self._registry_project(tx, REGISTRY_PREFIX + name, create_default=True)
            return [_registry(r) for r in tx.registries.rows()]

        return self.catalog.write(fn)

    # -- time to live (W&B's Artifact.ttl) --

    def set_ttl(self, version_id: str, ttl_seconds: float | None) -> VersionRecord:
        """Give a committed version a TTL counted from its commit (None: keep it for ever)."""
        if ttl_seconds is not None and not ttl_seconds > 0:
            raise ValidationError(f"a TTL must be positive, got {ttl_seconds} seconds")

        def fn(tx: Tx) -> VersionRecord:
            rec = self._committed(tx, version_id)
            check_ttl_allowed(rec.type, rec.source_version_id is not None)
            tx.ttl.assign(version_id, ttl_seconds)
            return tx.versions.record(version_id)

        return self.catalog.write(fn)

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

        return self.catalog.write(fn)

    # -- collections (W&B's ArtifactCollection: rename, description, tags, delete) --

    def _collection(self, tx: Tx, entity: str, project: str, name: str) -> int:
        pid = self._project(tx, entity, project)
        return tx.collections.require(pid, name, f"{entity}/{project}")

    def get_collection(self, entity: str, project: str, name: str) -> CollectionRecord:
        def fn(tx: Tx) -> CollectionRecord:
            pid = self._project(tx, entity, project)
            found = tx.collections.records(pid, name=name)
            if not found:
                raise ArtifactNotFoundError(f"artifact {name!r} not found in {entity}/{project}")
            return found[0]

        return self.catalog.read(fn)

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
            cid = self._collection(tx, entity, project, name)
            tx.collections.update(cid, name=new_name, description=description)
            if tags is not None:
                tx.collections.set_tags(cid, tags)
            pid = self._project(tx, entity, project)
            return tx.collections.records(pid, name=new_name or name)[0]

        return self.catalog.write(fn)

    def delete_collection(self, entity: str, project: str, name: str) -> None:
        """Delete a collection and every version of it (their blobs go with the next gc)."""

        def fn(tx: Tx) -> None:
            tx.collections.delete(self._collection(tx, entity, project, name))

        self.catalog.write(fn)

    def use_version(self, version_id: str, run: RunRecord) -> None:
        def fn(tx: Tx) -> None:
            pk = self._run_pk(tx, run.entity, run.project, run.id)
            tx.lineage.add(version_id, pk, "input")

        self.catalog.write(fn)

    def version_runs(self, version_id: str, role: str) -> list[RunRecord]:
        return self.catalog.read(lambda tx: tx.lineage.runs_of(version_id, role))

    # -- search --

    def search(self, request: SearchRequest) -> SearchResult:
        request.check()
        query = parse_query(request.query)

        def fn(tx: Tx) -> SearchResult:
            scope = None
            if request.projects is not None:
                scope = catalog_search.project_ids(tx, request.projects)
            collection_id = None
            if request.collection is not None:
                entity, project, name = request.collection
                pid, collection_id = tx.collections.locate(entity, project, name)
                if collection_id is None:
                    raise ArtifactNotFoundError(f"artifact {entity}/{project}/{name} not found")
                if scope is not None and pid not in scope:
                    scope = []
            hits = catalog_search.search(
                tx,
                query,
                project_ids=scope,
                collection_id=collection_id,
                kinds=request.kinds,
                sort=request.sort,
                descending=request.descending,
                offset=request.offset,
                limit=request.limit,
            )
            return SearchResult(
                projects=tuple(hits.projects),
                collections=tuple(hits.collections),
                versions=tuple(hits.versions),
                runs=tuple(hits.runs),
                totals=hits.totals,
            )

        return self.catalog.read(fn)

    # -- copying between stores (cairn sync) --

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

        return self.catalog.read(fn)

    def import_run(self, run: RunRecord) -> RunRecord:
        def fn(tx: Tx) -> RunRecord:
            pid = tx.projects.id_of(run.entity, run.project, create=True)
            assert pid is not None
            tx.runs.insert_imported(pid, run)
            return tx.runs.record(pid, run.id)

        return self.catalog.write(fn)

    def manifest_closure(self, root: str) -> tuple[list[str], list[str], list[str]]:
        """(pages, blobs, missing pages) of the manifest tree at ``root``: every page reachable
        from it that the store holds, the blobs their entries name, and the pages it lacks (whose
        subtrees could not be read). Not part of the protocol: the server checks with it that a
        key may read everything an import refers to."""
        pages: list[str] = []
        blobs: dict[str, None] = {}
        missing: list[str] = []
        level = [root]
        while level:
            present = self.blobs.has_many(level)
            below: list[str] = []
            for digest in dict.fromkeys(level):
                if digest not in present:
                    missing.append(digest)
                    continue
                pages.append(digest)
                node = self._reader.node(digest)
                if isinstance(node, Index):
                    below.extend(c.digest for c in node.children)
                else:
                    blobs.update((e.digest, None) for e in node.entries if e.ref is None)
            level = below
        return pages, list(blobs), missing

    def _link_source(self, tx: Tx, request: ImportRequest) -> str:
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

    def import_version(self, request: ImportRequest) -> CommitResult:
        with self._maintenance.shared():
            return self._import_version(request)

    def _import_version(self, request: ImportRequest) -> CommitResult:
        check_digest(request.digest)
        if request.index is not None and request.index < 0:
            raise ValidationError(f"a version number is 0 or more, not {request.index}")
        ttl = request.ttl_seconds
        if ttl is not None and not (math.isfinite(ttl) and ttl > 0):
            raise ValidationError(f"a TTL must be positive, got {ttl} seconds")
        existing = self._existing_with_digest(
            request.entity, request.project, request.name, request.digest
        )
        pages: list[str] = []
        blobs: list[str] = []
        size = count = 0
        if existing is None:
            pages, blobs, missing = self.manifest_closure(request.digest)
            if missing:
                return CommitResult(None, False, tuple(missing))
            absent = self.missing_blobs(blobs)
            if absent:
                return CommitResult(None, False, tuple(absent))
            top = self._reader.root_ref(request.digest)
            size, count = top.size, top.entry_count

        def fn(tx: Tx) -> CommitResult:
            pid = tx.projects.id_of(request.entity, request.project, create=True)
            assert pid is not None
            creator = self._maybe_run_pk(tx, pid, request.created_by)
            links = []
            for role, entity, project, run_id in request.runs:
                links.append((role, self._run_pk(tx, entity, project, run_id)))
            cid, next_index = tx.collections.lock(
                pid, request.name, request.type, request.collection_description
            )
            found = tx.versions.committed_with_digest(cid, request.digest)
            created = found is None
            source_id: str | None = None
            if found is None and request.link_of is not None:
                source_id = self._link_source(tx, request)
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
                self._grant(tx, pid, [*pages, *blobs])
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

        return self.catalog.write(fn)
