"""Distributed versions: many writers stage changes into one PENDING version, one finishes it.

To *stage* is to upsert changes into the PENDING version of a distributed id (``Service.stage``,
W&B's ``upsert_artifact``); the last change staged for a path wins. To *finish* is to stage the
finisher's own changes and commit the version with every change staged into it
(``Service.finish``, W&B's ``finish_artifact``). Both check first that the store has every blob
the request names (the same presence check as a commit: a stage refuses with
``BlobNotFoundError``, a finish answers ``CommitResult.missing``), under the maintenance lock
held shared, and neither reads or writes a blob inside a catalog transaction.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from cairn.core import (
    LATEST,
    PENDING,
    Change,
    ManifestEntry,
    PageReader,
    PageRef,
    TreeBuilder,
    VersionRecord,
    update_tree,
    validate_aliases,
)
from cairn.errors import BlobNotFoundError, ConflictError, ValidationError
from cairn.service._commit import check_fields, check_sizes, label
from cairn.service._manifests import check_total_size
from cairn.service._protocol import CommitResult, FinishRequest, StageRequest
from cairn.service._store import Store, blob_digests, optional_run

if TYPE_CHECKING:
    from cairn.catalog import Tx

_FINISH_ATTEMPTS = 20  # rounds of a finish whose staged changes keep changing (see _finish)
STAGED_BATCH = 10_000  # staged changes a finish reads per catalog transaction
CHANGE_BATCH = 5_000  # changes of a request checked and staged at a time
# A draft's staged changes up to this many apply onto its base in memory, rewriting only the
# pages they fall in (update_tree); more are merged with the base's entries as a stream.
UPDATE_IN_MEMORY = 20_000
_PAGE_FLUSH_BYTES = 2 << 20  # manifest pages a finish stores at a time


class _PageWriter:
    """Stores the pages of a manifest being built a few MiB at a time (the build runs between
    catalog transactions) and remembers their digests (a server grants them to the project)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._pending: dict[str, bytes] = {}
        self._bytes = 0
        self.digests: list[str] = []

    def put(self, digest: str, data: bytes) -> None:
        if digest not in self._pending:
            self._pending[digest] = data
            self._bytes += len(data)
            self.digests.append(digest)
        if self._bytes >= _PAGE_FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        self._store.store_pages(self._pending)
        self._pending, self._bytes = {}, 0


def _entries_only(changes: Iterable[Change]) -> Iterator[ManifestEntry]:
    for _, entry in changes:
        if entry is None:
            raise ValidationError("a new artifact cannot remove entries; it has no base version")
        yield entry


def _applied(base: Iterator[ManifestEntry], changes: Iterable[Change]) -> Iterator[ManifestEntry]:
    """The entries of ``base`` with ``changes`` applied (both in path order, paths unique)."""
    entry = next(base, None)
    for path, new in changes:
        while entry is not None and entry.path < path:
            yield entry
            entry = next(base, None)
        if entry is not None and entry.path == path:
            entry = next(base, None)  # replaced or removed
        if new is not None:
            yield new
    while entry is not None:
        yield entry
        entry = next(base, None)


def _batches(changes: Iterable[Change]) -> Iterator[list[Change]]:
    """``changes`` a few thousand at a time (a server's upsert decodes them as they are taken:
    ``cairn.server``'s ``StreamedChanges``)."""
    it = iter(changes)
    while batch := list(itertools.islice(it, CHANGE_BATCH)):
        yield batch


def _digests(changes: Sequence[Change]) -> list[str]:
    return blob_digests(e for _, e in changes)


def _kept_changing(request: FinishRequest) -> ConflictError:
    return ConflictError(
        f"distributed version {request.distributed_id!r} of {request.name} kept changing while"
        " it was finished; finish it again"
    )


class DistributedVersions:
    """``stage``, ``finish``, ``discard_pending`` and ``cleanup_pending`` of a ``LocalService``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def _checked(
        self, request: StageRequest | FinishRequest, stored: Collection[str] = ()
    ) -> tuple[str, ...]:
        """The request's changes checked (sizes; removals only in a draft), a batch at a time
        (once through them: a server decodes them again each time); the blobs the store lacks,
        those of ``stored`` not looked up (see ``stage``)."""
        validate_aliases(request.aliases)
        missing: dict[str, None] = {}
        for batch in _batches(request.changes):
            check_sizes(batch)
            if request.base_version_id is None and any(e is None for _, e in batch):
                raise ValidationError("only a draft (a version with a base) can remove entries")
            digests = [d for d in _digests(batch) if d not in stored]
            missing.update(dict.fromkeys(self._store.missing_blobs(digests)))
        return tuple(missing)

    def _stage_in(
        self, tx: Tx, request: StageRequest | FinishRequest
    ) -> tuple[int, int, str, int | None]:
        """Stage the request's changes into its PENDING version, creating it.

        Returns (collection id, next version number, version id, run pk); the collection and the
        version rows stay locked until the transaction ends.
        """
        pid = tx.projects.id_of(request.entity, request.project, create=True)
        assert pid is not None
        run_pk = optional_run(tx, pid, request.run_id)
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
        for batch in _batches(request.changes):
            tx.pending.stage(vid, batch, run_pk)
            self._store.grant(tx, pid, _digests(batch))
        tx.pending.add_aliases(vid, request.aliases)
        # A finisher that brings nothing is made a writer when it commits (see _commit_staged).
        if run_pk is not None and (request.changes or not isinstance(request, FinishRequest)):
            tx.lineage.add(vid, run_pk, "writer")
        return cid, next_index, vid, run_pk

    # -- stage --

    def stage(
        self, request: StageRequest, *, stored: Collection[str] = (), sweeps: int | None = None
    ) -> VersionRecord:
        """An upsert. ``stored``: blobs the caller stored after the maintenance lock's count of
        gc sweeps read ``sweeps``; not looked up again when no sweep ran since (under the shared
        hold, so none runs until the staging is done), as ``_commit.commit`` does."""
        check_fields(request)
        with self._store.maintenance.shared():
            if sweeps is None or sweeps != self._store.maintenance.sweeps():
                stored = ()
            missing = self._checked(request, stored)
            if missing:  # as a server answers: the SDK stores them again and retries
                raise BlobNotFoundError(
                    f"{len(missing)} blobs must be uploaded before staging, e.g. {missing[0]}"
                )

            def fn(tx: Tx) -> VersionRecord:
                _, _, vid, _ = self._stage_in(tx, request)
                return tx.versions.record(vid)

            return self._store.catalog.write(fn)

    # -- finish --

    def finish(self, request: FinishRequest) -> CommitResult:
        check_fields(request)
        with self._store.maintenance.shared():
            return self._finish(request)

    def build(self, vid: str, base_root: str, count: int) -> tuple[PageRef, list[str]]:
        """The manifest of the ``count`` changes staged into ``vid`` (onto ``base_root``; ""
        for none), its pages stored: (root, the pages written).

        The staged changes are read in path order, ``STAGED_BATCH`` per catalog transaction,
        and the pages stored as they fill, so memory does not grow with the number of staged
        changes. Changes staged meanwhile may or may not be in it:
        the caller commits it only if the staging generation is still the one it read."""
        pages = _PageWriter(self._store)
        staged = self._staged(vid)
        if base_root and count <= UPDATE_IN_MEMORY:
            root = update_tree(self._store.reader, base_root, list(staged), pages.put)
        else:
            builder = TreeBuilder(pages.put)
            if base_root:
                base = PageReader(self._store.blobs.get, capacity=8).iter_from(base_root)
                builder.extend(_applied(base, staged))
            else:
                builder.extend(_entries_only(staged))
            root = builder.finish()
        pages.flush()
        check_total_size(root)
        return root, pages.digests

    def _staged(self, vid: str) -> Iterator[Change]:
        """The changes staged into ``vid`` in path order, read a batch per transaction."""
        after: str | None = None
        while True:
            batch = self._store.catalog.read(
                lambda tx: tx.pending.staged_batch(vid, after, STAGED_BATCH)  # noqa: B023
            )
            yield from batch
            if len(batch) < STAGED_BATCH:
                return
            after = batch[-1][0]

    def _finish(self, request: FinishRequest) -> CommitResult:
        """Stage the last changes, then commit the pending version with every staged change.

        No blob is read or written inside a catalog transaction: a server's blob index
        (``CatalogBlobStore``) writes through the same catalog, and on SQLite (one writer at a
        time) a blob write inside a write transaction waits for that transaction forever. So
        the manifest is built between transactions (``build``), and the last one commits it
        only if nothing was staged since the staging it was built from (the version's staging
        generation is the same); else it is built again."""
        missing = self._checked(request)
        if missing:
            return CommitResult(None, False, missing)
        # (pending version id, base manifest root or "", staging generation, staged changes);
        # None: stage first (again, if another finished it meanwhile).
        staged: tuple[str, str, int, int] | None = None
        start_new = False
        catalog = self._store.catalog
        for _ in range(_FINISH_ATTEMPTS):
            if staged is None:
                staged = catalog.write(
                    lambda tx: self._stage_for_finish(tx, request, start_new=start_new)  # noqa: B023
                )
                if staged is None:  # nothing pending and a version committed: a repeated finish?
                    done = self._already_finished(request)
                    if done is not None:
                        return done
                    start_new = True  # it brings something new: that is a new version
                    continue
            vid, base_root, generation, count = staged
            root, pages = self.build(vid, base_root, count)
            outcome = catalog.write(
                lambda tx: self._commit_staged(tx, request, vid, generation, root, pages)  # noqa: B023
            )
            if isinstance(outcome, CommitResult):
                return outcome
            staged = None if outcome is None else (vid, base_root, *outcome)
        raise _kept_changing(request)

    def _stage_for_finish(
        self, tx: Tx, request: FinishRequest, *, start_new: bool
    ) -> tuple[str, str, int, int] | None:
        """Stage the request's changes: (pending version id, base manifest root or "", its
        staging generation, how many changes are staged into it). None, staging nothing, when
        no version of the distributed id is pending and one is committed, unless
        ``start_new``: see ``_already_finished``."""
        if not start_new:
            pid = tx.projects.id_of(request.entity, request.project, create=True)
            assert pid is not None
            cid, _ = tx.collections.lock(pid, request.name, request.type, request.description)
            if tx.pending.find(cid, request.distributed_id) is None and (
                tx.pending.last_committed(cid, request.distributed_id) is not None
            ):
                return None
        _, _, vid, _ = self._stage_in(tx, request)
        base_root = ""
        if request.base_version_id is not None:
            base_root = tx.versions.record(request.base_version_id).digest or ""
        return vid, base_root, tx.pending.staged_generation(vid), tx.pending.staged_count(vid)

    def _commit_staged(
        self,
        tx: Tx,
        request: FinishRequest,
        vid: str,
        generation: int,
        root: PageRef,
        pages: Sequence[str],
    ) -> CommitResult | tuple[int, int] | None:
        """Commit ``vid`` as built from its staging ``generation``. Returns the generation and
        the number of staged changes instead when something was staged meanwhile (build
        again), None when ``vid`` was finished by another."""
        pid = tx.projects.id_of(request.entity, request.project, create=True)
        assert pid is not None
        cid, next_index = tx.collections.lock(pid, request.name, request.type, request.description)
        if tx.pending.find(cid, request.distributed_id) != vid:
            return None
        now = tx.pending.staged_generation(vid)
        if now != generation:
            return now, tx.pending.staged_count(vid)
        run_pk = optional_run(tx, pid, request.run_id)
        if run_pk is not None:  # the run that commits wrote the version, whatever it brought
            tx.lineage.add(vid, run_pk, "writer")
        self._store.grant(tx, pid, pages)
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
        label(tx, cid, target, [*aliases, LATEST], request.tags, run_pk)
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
            record = self._store.catalog.read(newest)
            if record is None or record.digest is None:
                return None
            if request.run_id is not None and record.created_by == request.run_id:
                return CommitResult(record, created=True)
            for path, entry in request.changes:  # manifest pages are blobs: read outside the tx
                if self._store.reader.get(record.digest, path) != entry:
                    return None  # it brings something new: that is a new version

            def apply(tx: Tx, record: VersionRecord = record) -> CommitResult | None:
                pid = tx.projects.id_of(request.entity, request.project, create=False)
                assert pid is not None
                cid, _ = tx.collections.lock(pid, request.name, request.type, request.description)
                if tx.pending.find(cid, request.distributed_id) is not None or (
                    tx.pending.last_committed(cid, request.distributed_id) != record.id
                ):
                    return None  # another finish or upsert got in meanwhile: decide again
                run_pk = optional_run(tx, pid, request.run_id)
                label(tx, cid, record.id, request.aliases, request.tags, run_pk)
                return CommitResult(tx.versions.record(record.id), created=False)

            result = self._store.catalog.write(apply)
            if result is not None:
                return result
        raise _kept_changing(request)

    # -- discarding --

    def discard_pending(self, version_id: str) -> None:
        self._store.catalog.write(lambda tx: tx.pending.drop(version_id))

    def cleanup_pending(self, older_than_seconds: float) -> int:
        cutoff = time.time() - older_than_seconds

        def fn(tx: Tx) -> int:
            ids = tx.pending.older_than(cutoff)
            for vid in ids:
                tx.pending.drop(vid)
            return len(ids)

        return self._store.catalog.write(fn)
