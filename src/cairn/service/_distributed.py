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

import time
from collections.abc import Sequence

from cairn.catalog import Tx
from cairn.core import (
    LATEST,
    PENDING,
    Change,
    PageRef,
    VersionRecord,
    validate_aliases,
)
from cairn.errors import BlobNotFoundError, ConflictError, ValidationError
from cairn.service import _manifests as manifests
from cairn.service._commit import check_request, label
from cairn.service._protocol import CommitResult, FinishRequest, StageRequest
from cairn.service._store import Store, blob_digests, optional_run

_FINISH_ATTEMPTS = 20  # rounds of a finish whose staged changes keep changing (see _finish)


def _kept_changing(request: FinishRequest) -> ConflictError:
    return ConflictError(
        f"distributed version {request.distributed_id!r} of {request.name} kept changing while"
        " it was finished; finish it again"
    )


def _check_base(request: StageRequest | FinishRequest) -> None:
    validate_aliases(request.aliases)
    if request.base_version_id is None and any(e is None for _, e in request.changes):
        raise ValidationError("only a draft (a version with a base) can remove entries")


class DistributedVersions:
    """``stage``, ``finish``, ``discard_pending`` and ``cleanup_pending`` of a ``LocalService``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def _missing_blobs(self, changes: Sequence[Change]) -> tuple[str, ...]:
        return tuple(self._store.missing_blobs(blob_digests([e for _, e in changes])))

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
        tx.pending.stage(vid, request.changes, run_pk)
        tx.pending.add_aliases(vid, request.aliases)
        self._store.grant(tx, pid, blob_digests([e for _, e in request.changes]))
        # A finisher that brings nothing is made a writer when it commits (see _commit_staged).
        if run_pk is not None and (request.changes or not isinstance(request, FinishRequest)):
            tx.lineage.add(vid, run_pk, "writer")
        return cid, next_index, vid, run_pk

    # -- stage --

    def stage(self, request: StageRequest) -> VersionRecord:
        check_request(request)
        with self._store.maintenance.shared():
            _check_base(request)
            missing = self._missing_blobs(request.changes)
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
        check_request(request)
        with self._store.maintenance.shared():
            return self._finish(request)

    def build(self, base_root: str | None, changes: Sequence[Change]) -> tuple[PageRef, list[str]]:
        """The manifest of the staged ``changes`` (onto ``base_root``), its pages stored:
        (root, the pages written)."""
        root, pages = manifests.build(self._store, base_root, changes)
        self._store.store_pages(pages)
        return root, list(pages)

    def _finish(self, request: FinishRequest) -> CommitResult:
        """Stage the last changes, then commit the pending version with every staged change.

        No blob is read or written inside a catalog transaction: a server's blob index
        (``CatalogBlobStore``) writes through the same catalog, and on SQLite (one writer at a
        time) a blob write inside a write transaction waits for that transaction forever. So
        the manifest is built between two transactions, and the second one commits it only if
        the staged changes are still those it was built from (else it is built again)."""
        _check_base(request)
        missing = self._missing_blobs(request.changes)
        if missing:
            return CommitResult(None, False, missing)
        changes: list[Change] | None = None  # None: stage first (again, if another finished)
        vid = base_root = ""
        start_new = False
        catalog = self._store.catalog
        for _ in range(_FINISH_ATTEMPTS):
            if changes is None:
                staged = catalog.write(
                    lambda tx: self._stage_for_finish(tx, request, start_new=start_new)  # noqa: B023
                )
                if staged is None:  # nothing pending and a version committed: a repeated finish?
                    done = self._already_finished(request)
                    if done is not None:
                        return done
                    start_new = True  # it brings something new: that is a new version
                    continue
                vid, base_root, changes = staged
            root, pages = self.build(base_root or None, changes)
            built = changes
            outcome = catalog.write(
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
        _, _, vid, _ = self._stage_in(tx, request)
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
        pages: Sequence[str],
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
