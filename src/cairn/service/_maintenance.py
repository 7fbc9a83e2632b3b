"""Store maintenance: garbage collection and verification (``cairn gc``, ``cairn verify``).

Both work on a catalog and a blob store directly, in the process that owns them (the embedded
store, or a server's own machine). The rules are in docs/design.md ("Garbage collection",
"Verification"); in short:

* The **live set** is every page and blob reachable from the manifest root of a COMMITTED
  version, every blob named by a staged entry of a PENDING version, and the pages of the base of
  a PENDING draft. DELETED versions keep nothing alive.
* gc removes blobs outside the live set that are older than a grace period. A commit checks that
  its blobs are present and commits in one section under the store's maintenance lock held
  *shared*; gc recomputes the live set and deletes under the same lock held *exclusive*. So a
  commit either finished before the sweep (its blobs are live) or checks after it (and stores
  again whatever was removed); blobs written for a commit still in progress are young and spared.
* verify re-hashes stored blobs and checks that every blob a committed version names exists.

The lock itself is in ``_maintenance_lock.py``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from cairn.core import (
    COMMITTED,
    Index,
    Leaf,
    PageReader,
    VersionRecord,
    decode_node,
    digest_from_hasher,
    new_hasher,
)
from cairn.errors import (
    BlobNotFoundError,
    CommError,
    DigestMismatchError,
    ManifestFormatError,
)
from cairn.service._maintenance_lock import MaintenanceLock
from cairn.storage import CHUNK, BlobStore

if TYPE_CHECKING:
    from cairn.catalog import Catalog, Tx

DEFAULT_GRACE_SECONDS = 3600.0
TEMP_MIN_AGE_SECONDS = 3600.0  # partial files younger than this may belong to a running write
_DELETE_BATCH = 1000


# -- progress ------------------------------------------------------------------------------------


class ProgressBar(Protocol):
    def advance(self, files: int, nbytes: int) -> None: ...


ProgressFactory = Callable[[str, int | None, int | None], AbstractContextManager[ProgressBar]]
"""``progress(description, total_files, total_bytes)``: a context manager yielding a bar (the
SDK passes ``cairn.sdk._progress.progress``, which draws on a terminal)."""


class _NoBar:
    def advance(self, files: int, nbytes: int) -> None:
        pass


@contextlib.contextmanager
def no_progress(
    description: str, total_files: int | None = None, total_bytes: int | None = None
) -> Iterator[ProgressBar]:
    yield _NoBar()


# -- reports -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GcReport:
    """What ``collect_garbage`` found and (unless ``dry_run``) removed."""

    dry_run: bool
    grace_seconds: float
    blobs: int  # blobs in the store when it was scanned
    bytes: int
    live_blobs: int  # of those, reachable from a version
    removed_blobs: int  # garbage removed (or that would be, with dry_run)
    removed_bytes: int
    young_blobs: int  # garbage spared because it is younger than the grace period
    young_bytes: int
    temp_files_removed: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "grace_seconds": self.grace_seconds,
            "blobs": self.blobs,
            "bytes": self.bytes,
            "live_blobs": self.live_blobs,
            "removed_blobs": self.removed_blobs,
            "removed_bytes": self.removed_bytes,
            "young_blobs": self.young_blobs,
            "young_bytes": self.young_bytes,
            "temp_files_removed": self.temp_files_removed,
        }


MISSING = "missing"
DAMAGED = "damaged"


@dataclass(frozen=True, slots=True)
class VerifyProblem:
    """A blob that is missing or damaged, and where a version refers to it.

    ``version`` is None for a damaged blob no version refers to; ``path`` is None for a manifest
    page (the version's file list) rather than a file.
    """

    kind: str  # MISSING or DAMAGED
    digest: str
    version: str | None = None  # qualified name, entity/project/name:vN
    path: str | None = None

    def message(self) -> str:
        what = f"blob {self.digest}"
        if self.version is not None:
            where = f"file {self.path!r}" if self.path is not None else "a manifest page"
            what += f" ({where} of {self.version})"
        return f"{self.kind}: {what}"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "digest": self.digest,
            "version": self.version,
            "path": self.path,
        }


@dataclass(frozen=True, slots=True)
class VerifyReport:
    versions: int  # committed versions checked
    blobs: int  # blobs re-hashed (or found missing)
    bytes: int
    problems: tuple[VerifyProblem, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "versions": self.versions,
            "blobs": self.blobs,
            "bytes": self.bytes,
            "problems": [p.to_json() for p in self.problems],
        }


# -- the live set --------------------------------------------------------------------------------


def _roots_and_staged(catalog: Catalog, keep: Callable[[Iterable[str]], None]) -> list[str]:
    """Manifest roots that keep pages alive; the digests staged in PENDING versions go to
    ``keep`` as they are read (a batch of rows at a time, never all in one list)."""

    def fn(tx: Tx) -> list[str]:
        roots = tx.versions.live_roots()
        pending = tx.versions.records(tx.pending.older_than(time.time() + 1e9))
        bases = {p.base_version_id for p in pending if p.base_version_id is not None}
        for base in tx.versions.records(sorted(bases)):
            if base.digest is not None:
                roots.append(base.digest)  # a draft's base, even if deleted since
        keep(tx.pending.staged_digests())
        return roots

    return catalog.read(fn)


class _Marker:
    """Walks manifests from their roots, reading each page once (pages are shared widely)."""

    def __init__(self, blobs: BlobStore, bar: ProgressBar) -> None:
        self._blobs = blobs
        self._bar = bar
        self.pages: set[str] = set()
        self.entries: set[str] = set()

    def keep(self, digests: Iterable[str]) -> None:
        self.entries.update(digests)

    def mark(self, roots: Iterable[str]) -> None:
        for root in roots:
            self._walk(root)

    def _walk(self, root: str) -> None:
        stack = [root]
        while stack:
            digest = stack.pop()
            if digest in self.pages:
                continue
            try:
                data = self._blobs.get(digest)
                node = decode_node(data, check_paths=False)
            except (BlobNotFoundError, DigestMismatchError, ManifestFormatError) as exc:
                raise CommError(
                    f"garbage collection stopped, nothing was removed: manifest page {digest}"
                    f" cannot be read ({exc}); run `cairn verify` to see what is damaged"
                ) from None
            self.pages.add(digest)
            self._bar.advance(1, len(data))
            if isinstance(node, Leaf):
                self.entries.update(e.digest for e in node.entries if e.ref is None)
            else:
                stack.extend(c.digest for c in node.children)

    def live(self, digest: str) -> bool:
        return digest in self.pages or digest in self.entries


def collect_garbage(
    catalog: Catalog,
    blobs: BlobStore,
    lock: MaintenanceLock,
    *,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
    dry_run: bool = False,
    progress: ProgressFactory = no_progress,
) -> GcReport:
    """Remove blobs that no version refers to and that are older than ``grace_seconds``.

    The live set is computed once without the lock (the long part), then brought up to date and
    the garbage removed under the exclusive lock, so commits wait only for the sweep.
    """
    if grace_seconds < 0:
        raise ValueError("grace_seconds must be zero or more")
    # Ages count from gc's start, not from the end of marking: a blob stored while the live set
    # was computed belongs to a commit that may still be on its way (with grace 0, every log
    # racing a gc used to lose such blobs, and an upsert failed).
    cutoff = time.time() - grace_seconds
    with progress("marking", None, None) as bar:
        marker = _Marker(blobs, bar)
        marker.mark(_roots_and_staged(catalog, marker.keep))
    total = total_bytes = live = young = young_bytes = 0
    garbage: list[tuple[str, int]] = []
    with progress("scanning", None, None) as bar:
        for info in blobs.list():
            total += 1
            total_bytes += info.size
            bar.advance(1, info.size)
            if marker.live(info.digest):
                live += 1
            elif info.stored_at is None or info.stored_at > cutoff:
                young += 1  # written for a commit that may still be in progress
                young_bytes += info.size
            else:
                garbage.append((info.digest, info.size))
    temp_removed = 0
    if not dry_run and garbage:
        with lock.exclusive():
            # Versions committed (or entries staged) since the first pass may use old blobs.
            marker.mark(_roots_and_staged(catalog, marker.keep))
            revived = [g for g in garbage if marker.live(g[0])]
            garbage = [g for g in garbage if not marker.live(g[0])]
            live += len(revived)
            gone_bytes = sum(size for _, size in garbage)
            with progress("removing", len(garbage), gone_bytes) as bar:
                for start in range(0, len(garbage), _DELETE_BATCH):
                    batch = garbage[start : start + _DELETE_BATCH]
                    blobs.delete_many([d for d, _ in batch])
                    bar.advance(len(batch), sum(size for _, size in batch))
    if not dry_run:
        temp_removed = blobs.remove_stale_temp(max(grace_seconds, TEMP_MIN_AGE_SECONDS))
    return GcReport(
        dry_run=dry_run,
        grace_seconds=grace_seconds,
        blobs=total,
        bytes=total_bytes,
        live_blobs=live,
        removed_blobs=len(garbage),
        removed_bytes=sum(size for _, size in garbage),
        young_blobs=young,
        young_bytes=young_bytes,
        temp_files_removed=temp_removed,
    )


# -- verification --------------------------------------------------------------------------------


def committed_versions(catalog: Catalog) -> list[VersionRecord]:
    """Every committed version in the store."""

    def fn(tx: Tx) -> list[VersionRecord]:
        out: list[VersionRecord] = []
        for entity, project in tx.projects.names():
            pid = tx.projects.id_of(entity, project, create=False)
            assert pid is not None
            for coll in tx.collections.records(pid):
                out.extend(tx.versions.records(tx.versions.ids(coll.id)))
        return out

    return catalog.read(fn)


def _rehash(blobs: BlobStore, digest: str) -> str | None:
    """The problem kind of a stored blob (None if it is intact), reading it as a stream."""
    hasher = new_hasher()
    try:
        with blobs.open(digest) as f:
            while chunk := f.read(CHUNK):
                hasher.update(chunk)
    except (BlobNotFoundError, FileNotFoundError):
        return MISSING
    return None if digest_from_hasher(hasher) == digest else DAMAGED


def _referrers(
    blobs: BlobStore, versions: Sequence[VersionRecord], bad: dict[str, str]
) -> list[VerifyProblem]:
    """Every (version, path) that refers to one of the ``bad`` digests (digest -> kind)."""
    problems: list[VerifyProblem] = []
    seen: set[str] = set()
    # Only run when blobs are bad; each version's tree is walked whole, so a larger cache only
    # helps versions of fewer pages than it holds (a 1,000,000-entry one has ~2,000 leaves).
    reader = PageReader(blobs.get, capacity=64)
    for rec in versions:
        assert rec.digest is not None
        stack = [rec.digest]
        while stack:
            digest = stack.pop()
            if digest in bad:
                problems.append(VerifyProblem(bad[digest], digest, rec.qualified_name))
                seen.add(digest)
                continue
            node = reader.node(digest)
            if isinstance(node, Index):
                stack.extend(c.digest for c in node.children)
                continue
            for e in node.entries:
                if e.ref is None and e.digest in bad:
                    problems.append(
                        VerifyProblem(bad[e.digest], e.digest, rec.qualified_name, e.path)
                    )
                    seen.add(e.digest)
    problems.extend(VerifyProblem(kind, d) for d, kind in sorted(bad.items()) if d not in seen)
    return problems


def verify_store(
    catalog: Catalog,
    blobs: BlobStore,
    versions: Sequence[VersionRecord] | None = None,
    *,
    progress: ProgressFactory = no_progress,
) -> VerifyReport:
    """Re-hash blobs and check that every blob of the versions exists.

    With ``versions`` None, every committed version is checked and every blob in the store is
    re-hashed (also those no version needs); otherwise only the blobs those versions use.
    """
    whole_store = versions is None
    checked = committed_versions(catalog) if versions is None else list(versions)
    checked = [v for v in checked if v.state == COMMITTED and v.digest is not None]
    bad: dict[str, str] = {}
    pages: set[str] = set()
    needed: dict[str, int] = {}  # digest -> size, for the progress bar
    with progress("reading manifests", len(checked), None) as bar:
        for rec in checked:
            assert rec.digest is not None
            stack = [rec.digest]
            while stack:
                digest = stack.pop()
                if digest in pages or digest in bad:
                    continue
                try:
                    node = decode_node(blobs.get(digest), check_paths=False)
                except BlobNotFoundError:
                    bad[digest] = MISSING
                    continue
                except (DigestMismatchError, ManifestFormatError):
                    bad[digest] = DAMAGED
                    continue
                pages.add(digest)
                if isinstance(node, Leaf):
                    for e in node.entries:
                        if e.ref is None:
                            needed[e.digest] = e.size or 0
                else:
                    stack.extend(c.digest for c in node.children)
            bar.advance(1, 0)
    if whole_store:
        listed = {info.digest: info.size for info in blobs.list()}
        for d in needed:
            if d not in listed and d not in pages:
                bad[d] = MISSING
        to_hash = {d: s for d, s in listed.items() if d not in pages and d not in bad}
    else:
        to_hash = {d: s for d, s in needed.items() if d not in pages}
    hashed_bytes = 0
    with progress("verifying", len(to_hash), sum(to_hash.values())) as bar:
        for digest, size in to_hash.items():
            kind = _rehash(blobs, digest)
            if kind == MISSING and digest not in needed:
                continue  # listed, then collected by a gc running meanwhile: no version used it
            if kind is not None:
                bad[digest] = kind
            hashed_bytes += size
            bar.advance(1, size)
    problems = _referrers(blobs, checked, bad) if bad else []
    damaged = [d for d, kind in bad.items() if kind == DAMAGED]
    if damaged:
        # A damaged copy is worse than none: presence checks would call it present forever.
        # Removed, the next log of the same content stores it again (the repair).
        blobs.delete_many(damaged)
    return VerifyReport(
        versions=len(checked),
        blobs=len(to_hash) + len(pages),
        bytes=hashed_bytes,
        problems=tuple(problems),
    )
