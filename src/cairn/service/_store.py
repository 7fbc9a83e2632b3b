"""The store a ``LocalService`` serves, as each of its parts sees it.

One catalog and one blob store, and the few rules for using them together: which blobs the store
lacks (the one presence check every commit, upsert and finish makes before its catalog
transaction), storing manifest pages (never inside a catalog transaction), and which project may
read which blob (a server's grants). Also the lookups inside a catalog transaction that every
part shares: a project, a run, a collection or a committed version by name, or not found.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from cairn.core import COMMITTED, ManifestEntry, PageReader, VersionRecord
from cairn.errors import ArtifactNotFoundError, UsageError
from cairn.service._maintenance_lock import MaintenanceLock
from cairn.storage import BlobStore

if TYPE_CHECKING:
    from cairn.catalog import BlobReader, Catalog, Tx


class Store:
    """A catalog and a blob store served together, shared by every part of ``LocalService``."""

    def __init__(
        self,
        catalog: Catalog,
        blobs: BlobStore,
        *,
        location: str,
        maintenance: MaintenanceLock,
        track_blob_owners: bool,
        indexed_by_catalog: bool = False,
    ) -> None:
        self.catalog = catalog
        self.blobs = blobs
        self.location = location
        # Shared by commits from their blob check to their catalog commit, exclusive for gc's
        # sweep (see _maintenance.py).
        self.maintenance = maintenance
        # A server records which project refers to which blob (files and manifest pages), so a
        # key reads only blobs of projects it may read. The embedded store has one user: no need.
        self.track_blob_owners = track_blob_owners
        # Which blobs a key may use and which the store has are one statement in the commit's
        # transaction (``grant_readable``), not a presence check before it, where the catalog
        # indexes every blob of the store (an S3 store's ``CatalogBlobStore``) and grants them.
        self.presence_in_grant = track_blob_owners and indexed_by_catalog
        # Pages of commits onto a base and of diffs: a draft's commit reads the pages from the
        # root to each change (index pages stay recent, so they stay); 64 decoded pages as the
        # SDK keeps (512 held ~260,000 entries, ~80 MiB once full, for no measured gain).
        self.reader = PageReader(blobs.get, capacity=64)

    def missing_blobs(self, digests: Sequence[str]) -> list[str]:
        """The digests (once each, in order) whose blobs the store lacks."""
        present = self.blobs.has_many(digests)
        return [d for d in dict.fromkeys(digests) if d not in present]

    def store_pages(self, pages: Mapping[str, bytes]) -> None:
        """Store the manifest pages the store lacks (between catalog transactions, never in one:
        a server's blob index writes through the same catalog)."""
        if pages:
            present = self.blobs.has_many(list(pages))
            self.blobs.put_many([(d, b) for d, b in pages.items() if d not in present])

    def grant(self, tx: Tx, project_id: int, digests: Iterable[str]) -> None:
        """Record that the project refers to these blobs (a server's readers may read them)."""
        if self.track_blob_owners:
            tx.grants.add(project_id, digests)

    def grant_readable(
        self, tx: Tx, project_id: int, digests: Iterable[str], reader: BlobReader | None
    ) -> list[str]:
        """``grant`` those of ``digests`` that ``reader`` (a server's key) may read, and return
        the others: nothing may be committed then. On PostgreSQL the read check is one
        statement and the grants one ``COPY`` (``BlobGrants.add_readable``); with
        ``presence_in_grant`` the check also returns those the store lacks (the same
        statement). ``reader`` None: ``grant`` them all."""
        if reader is None or not self.track_blob_owners:
            self.grant(tx, project_id, digests)
            return []
        return tx.grants.add_readable(project_id, digests, reader, indexed=self.presence_in_grant)

    def unreadable(self, reader: BlobReader, digests: Sequence[str]) -> list[str]:
        """Those of ``digests`` that ``reader`` may not read (outside any transaction)."""
        from cairn.catalog import readable_blobs

        found = readable_blobs(self.catalog, reader.owner, reader.projects, digests)
        return [d for d in dict.fromkeys(digests) if d not in found]

    def committed_with_digest(
        self, entity: str, project: str, name: str, digest: str
    ) -> str | None:
        """The committed version of ``entity/project/name`` with manifest ``digest``, if any."""

        def fn(tx: Tx) -> str | None:
            pid = tx.projects.id_of(entity, project, create=False)
            cid = None if pid is None else tx.collections.id_of(pid, name)
            return None if cid is None else tx.versions.committed_with_digest(cid, digest)

        return self.catalog.read(fn)


class Unreadable(Exception):
    """Raised inside a transaction (rolling it back) that grants blobs a server's key may not
    read, or that the store lacks (``Store.grant_readable`` returned them): a commit or an
    import names them."""

    def __init__(self, digests: Sequence[str]) -> None:
        super().__init__(f"{len(digests)} blobs the key may not read")
        self.digests = tuple(digests)


def blob_digests(entries: Iterable[ManifestEntry | None]) -> list[str]:
    """The stored content the entries name (references name none), once each."""
    return list({e.digest for e in entries if e is not None and e.ref is None})


# -- lookups inside a transaction -----------------------------------------------------------------


def require_project(tx: Tx, entity: str, project: str) -> int:
    pid = tx.projects.id_of(entity, project, create=False)
    if pid is None:
        raise ArtifactNotFoundError(f"project {entity}/{project} not found")
    return pid


def require_run(tx: Tx, entity: str, project: str, run_id: str) -> int:
    """The primary key of a run (``ArtifactNotFoundError`` if it or its project is missing)."""
    return tx.runs.require_pk(require_project(tx, entity, project), run_id)


def optional_run(tx: Tx, project_id: int, run_id: str | None) -> int | None:
    return None if run_id is None else tx.runs.require_pk(project_id, run_id)


def require_collection(tx: Tx, entity: str, project: str, name: str) -> int:
    pid = require_project(tx, entity, project)
    return tx.collections.require(pid, name, f"{entity}/{project}")


def require_committed(tx: Tx, version_id: str) -> VersionRecord:
    rec = tx.versions.record(version_id)
    if rec.state != COMMITTED:
        raise UsageError(f"version {rec.qualified_name} is {rec.state}; only committed ones")
    return rec
