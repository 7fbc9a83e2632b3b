"""Committing a version in one step (``Service.commit``), and what every commit shares.

The order is the rule (docs/design.md, "Garbage collection"): under the maintenance lock held
shared, check the request, build the manifest (only the changed pages when there is a base),
ask the store which blobs it lacks (not those the caller stored since a sweep count that is
still the lock's: see ``commit``; the answer goes back in ``CommitResult.missing`` and nothing
is committed: the SDK stores them and commits again, ``Stager.commit_with_blobs``), store the
new pages, then one catalog transaction. A server whose catalog indexes its store's blobs (S3)
asks inside that transaction instead, in the statement that grants a key's blobs
(``Store.presence_in_grant``). No blob is read or written inside a catalog
transaction. The distributed finish (``_distributed.py``) uses the same request checks and the
same labelling of the version it commits.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING

from cairn.core import (
    COMMITTED,
    INT_RANGE,
    LATEST,
    Change,
    check_json_value,
    validate_alias,
    validate_aliases,
    validate_artifact_name,
    validate_project,
    validate_tags,
    validate_type,
)
from cairn.errors import ConflictError, UsageError, ValidationError
from cairn.service import _manifests as manifests
from cairn.service._protocol import CommitRequest, CommitResult, StageRequest
from cairn.service._store import Store, Unreadable, blob_digests, optional_run

if TYPE_CHECKING:
    from cairn.catalog import BlobReader, Tx


def check_request(request: CommitRequest | StageRequest) -> None:
    """A request's names, metadata and sizes, checked by the rules of ``cairn.core`` before
    anything is written (the server runs every request through here too, so the embedded store
    and a server accept exactly the same things, and nothing unreadable is committed)."""
    check_fields(request)
    check_sizes(request.changes)


def check_fields(request: CommitRequest | StageRequest) -> None:
    """``check_request`` but the changes' sizes (``check_sizes``, a batch at a time)."""
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


def check_sizes(changes: Iterable[Change]) -> None:
    for path, entry in changes:
        if entry is not None and entry.size is not None and entry.size > INT_RANGE[1]:
            raise ValidationError(f"entry {path!r}: size {entry.size} is beyond 64 bits")


def label(
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


def commit(
    store: Store,
    request: CommitRequest,
    *,
    stored: Collection[str] = (),
    sweeps: int | None = None,
    held: Sequence[tuple[str, bytes]] = (),
    reader: BlobReader | None = None,
) -> CommitResult:
    """``Service.commit``: see the module's docstring. ``stored``: blobs the caller stored into
    this store after it read the maintenance lock's count of sweeps, ``sweeps``; when the count
    is the same under the shared lock, no sweep ran since, so they are there and not looked up
    again (an embedded store's first log stored every blob it names a moment ago). ``held``:
    the caller's last few blobs, not stored yet (a re-log with a file or two changed): stored
    here with the new pages, in one write made durable before the catalog transaction, or
    alone when nothing is committed (an error before that leaves them to the caller).
    ``reader``: a server's key, which may name only blobs it may read; those it may not are
    answered as missing, as absent ones are (checked in the statement that grants the others
    to the project, in the commit's transaction)."""
    check_request(request)
    # From the blob check to the catalog commit, gc may not sweep (see _maintenance.py).
    with store.maintenance.shared():
        if sweeps is None or sweeps != store.maintenance.sweeps():
            stored = ()
        return _commit(store, request, stored, dict(held), reader)


def _base_root(
    store: Store, request: CommitRequest, held: dict[str, bytes]
) -> tuple[str | None, list[str], bool]:
    """The manifest the changes apply onto (None: a new one), the blobs a client-written
    manifest names that the store lacks, and whether a committed version of the collection has
    that manifest already. A client-written manifest may come with a base version
    (a draft that streamed a large directory): the changes apply onto the manifest, and the
    version is recorded as the new one's base (lineage, diffs), checked as a draft's base.
    A manifest read here is stored already (a stager holds no blobs once it streams pages);
    the ``held`` blobs are stored (and emptied) first all the same."""
    base = _base_version(store, request)
    if request.manifest is not None:
        # Re-logging the same tree (or changes to it): a version of this collection has the
        # manifest already, checked when it was committed (and its blobs kept since): no
        # need to read it again.
        known = store.committed_with_digest(
            request.entity, request.project, request.name, request.manifest
        )
        if not known:
            store.store_pages(held)
            held.clear()
        missing = [] if known else manifests.check_client_manifest(store, request.manifest)
        return request.manifest, missing, known is not None
    return base, [], False


def _base_version(store: Store, request: CommitRequest) -> str | None:
    """The root of the request's base version (a draft's), checked: committed, and of the
    collection the draft is logged to."""
    base_id = request.base_version_id
    if base_id is None:
        return None
    base = store.catalog.read(lambda tx: tx.versions.record(base_id))
    if base.state != COMMITTED or base.digest is None:
        raise UsageError(f"the base version {base.qualified_name} is not committed")
    if base.name != request.name or base.project != request.project:
        raise ValidationError(
            f"a draft of {base.qualified_name} must be logged as"
            f" {base.project}/{base.name}, not {request.project}/{request.name}"
        )
    return base.digest


def _commit(
    store: Store,
    request: CommitRequest,
    stored: Collection[str],
    held: dict[str, bytes],
    reader: BlobReader | None,
) -> CommitResult:
    validate_aliases(request.aliases)
    base_root, manifest_missing, known = _base_root(store, request, held)
    root, pages = manifests.build(store, base_root, request.changes)
    existing = store.committed_with_digest(
        request.entity, request.project, request.name, root.digest
    )
    if existing is None:
        named = blob_digests([e for _, e in request.changes])
        if stored or held:
            named = [d for d in named if d not in stored and d not in held]
        # A key's blobs in a store its catalog indexes are looked for in the statement that
        # grants them (in the transaction below: absent ones roll it back and come back as
        # missing), not by a check of their own first.
        in_grant = reader is not None and store.presence_in_grant and not manifest_missing
        missing = [] if in_grant else store.missing_blobs(named)
        missing = list(dict.fromkeys([*manifest_missing, *missing]))
        if missing:
            if reader is not None:
                # Present blobs the key may not read are answered with the absent ones: the
                # answer never tells a key that content it may not read is stored.
                missing = list(dict.fromkeys([*store.unreadable(reader, named), *missing]))
            store.store_pages(held)
            return CommitResult(None, False, tuple(missing))
        store.store_pages({**held, **pages})  # one write, one flush (a small re-log's blobs too)
    else:
        store.store_pages(held)
    # The blobs a client-written manifest names, granted to the project (a server's readers may
    # read them): read here, never inside the catalog's transaction. Not when a version of the
    # collection has that manifest: its commit granted them to the project (every commit grants
    # its project what its version names, and grants are never taken back).
    granted = None
    if store.track_blob_owners and request.manifest is not None and not known:
        granted = manifests.packed_blobs(store, request.manifest)

    def fn(tx: Tx) -> CommitResult:
        pid = tx.projects.id_of(request.entity, request.project, create=True)
        assert pid is not None
        run_pk = optional_run(tx, pid, request.run_id)
        cid, next_index = tx.collections.lock(pid, request.name, request.type, request.description)
        if request.expect_alias is not None:
            _check_expected_alias(tx, cid, request.name, request.expect_alias)
        unreadable = store.grant_readable(
            tx, pid, blob_digests([e for _, e in request.changes]), reader
        )
        if unreadable:
            raise Unreadable(unreadable)
        store.grant(tx, pid, pages)  # the new pages, made here
        for batch in granted.batches() if granted is not None else ():
            tx.grants.add(pid, batch)
        found = tx.versions.committed_with_digest(cid, root.digest)
        if found is not None:
            # Identical content: no new version; it gets the aliases and "latest".
            label(tx, cid, found, [*request.aliases, LATEST], request.tags, run_pk)
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
        label(tx, cid, vid, [*request.aliases, LATEST], request.tags, run_pk)
        return CommitResult(tx.versions.record(vid), created=True)

    try:
        result = store.catalog.write(fn)
    except Unreadable as refused:
        return CommitResult(None, False, refused.digests)
    finally:
        if granted is not None:
            granted.close()
    if existing is not None and result.created:
        # The duplicate vanished between the check and the commit (deleted): pages are needed.
        store.store_pages(pages)
    return result
