"""Manifest pages on the store's side.

Building a version's manifest from changes (only the changed pages when there is a base),
checking a manifest a client wrote as blobs (``CommitRequest.manifest``) page by page, and
walking a manifest for the pages and blobs it names (a server's grants, ``cairn sync``). The
format itself is ``cairn.core``'s; this is where the store reads and writes it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence

from cairn.core import (
    INT_RANGE,
    Change,
    Index,
    Leaf,
    PageReader,
    PageRef,
    TreeBuilder,
    build_tree,
    check_digest,
    decode_node,
    digest_from_raw,
    digest_raw,
    update_tree,
)
from cairn.errors import (
    BlobNotFoundError,
    DigestMismatchError,
    ManifestFormatError,
    ValidationError,
)
from cairn.service._store import Store


def _discard_page(digest: str, data: bytes) -> None:
    """A page sink that keeps nothing (a manifest rebuilt only for its digest)."""


def check_total_size(root: PageRef) -> None:
    if root.size > INT_RANGE[1]:
        raise ValidationError(f"the version's total size ({root.size} bytes) is beyond 64 bits")


def build(
    store: Store, base_root: str | None, changes: Sequence[Change]
) -> tuple[PageRef, dict[str, bytes]]:
    """Build the new manifest in memory: (root, pages written). With a base, only the pages the
    changes fall in are written; the pages are stored by the caller (``Store.store_pages``)."""
    pages: dict[str, bytes] = {}

    def put(digest: str, data: bytes) -> None:
        pages[digest] = data

    if base_root is None:
        if any(e is None for _, e in changes):
            raise ValidationError("a new artifact cannot remove entries; it has no base version")
        root = build_tree((e for _, e in changes if e is not None), put)
    else:
        root = update_tree(store.reader, base_root, changes, put)
    check_total_size(root)
    return root, pages


PageCheck = Callable[[list[str]], Collection[str]]
"""Those of a level's manifest pages a server's key may not read (``Store.unreadable``)."""


def not_stored(digest: str) -> ValidationError:
    """A client-written manifest's page the store lacks, or that its key may not read: the
    same answer for both (it never tells a key that a page it may not read is stored)."""
    return ValidationError(
        f"manifest page {digest} is not in the store: store the manifest's pages before"
        " committing it (log the artifact again)"
    )


def _load_page(store: Store, digest: str) -> bytes:
    try:
        return store.blobs.get(check_digest(digest))
    except BlobNotFoundError:
        raise not_stored(digest) from None


def walk(
    store: Store, root: str, unreadable: PageCheck | None = None
) -> Iterator[tuple[str, Leaf | Index | None]]:
    """The pages of the manifest tree at ``root``, level by level and each once, read one at a
    time: (digest, its page), or (digest, None) for a page the store lacks or, with
    ``unreadable`` (a server's key, one check a level), one the key may not read. Nothing
    below such a page is read: a key that may read (or stored) the root learns nothing of what
    a page below it that it may not read names, not even the digests of its files."""
    seen: set[str] = set()
    level: list[str] = [check_digest(root)]
    while level:
        seen.update(level)
        refused = set(unreadable(level)) if unreadable is not None else set()
        yield from ((digest, None) for digest in level if digest in refused)
        below: dict[str, None] = {}
        for digest in level:
            if digest in refused:
                continue
            try:
                node = decode_node(store.blobs.get(digest))  # not kept: read once
            except BlobNotFoundError:
                yield digest, None
                continue
            yield digest, node
            if isinstance(node, Index):
                below.update((check_digest(c.digest), None) for c in node.children)
        level = [d for d in below if d not in seen]


def blob_batches(
    store: Store, root: str, batch: int = 10_000, unreadable: PageCheck | None = None
) -> Iterator[list[str]]:
    """The blobs a manifest needs (its pages, and its entries' stored content), in batches:
    read page by page, never the whole manifest at once. A page the store lacks, or that
    ``unreadable`` names (``walk``), is refused (``not_stored``) before anything below it is
    read."""
    out: list[str] = []
    for digest, node in walk(store, root, unreadable):
        if node is None:
            raise not_stored(digest)
        out.append(digest)
        if isinstance(node, Leaf):
            out.extend(e.digest for e in node.entries if e.ref is None)
            if len(out) >= batch:
                yield list(dict.fromkeys(out))
                out = []
    if out:
        yield list(dict.fromkeys(out))


class PackedDigests:
    """Digests held as their 32 raw bytes each in a temporary file (a million: 32 MiB of disk,
    not of memory, nor the 100 MiB of as many strings): the blobs a manifest names, read before
    a catalog transaction (never in one) and handed to it in batches; the blobs of a server's
    batch upload. ``close()`` when done."""

    def __init__(self, digests: Iterable[str] = ()) -> None:
        self._file = tempfile.TemporaryFile(prefix="cairn-digests-")  # noqa: SIM115 (close())
        self.extend(digests)

    def extend(self, digests: Iterable[str]) -> None:
        self._file.write(b"".join(digest_raw(d) for d in digests))

    def batches(self, batch: int = 10_000) -> Iterator[list[str]]:
        self._file.seek(0)
        while chunk := self._file.read(32 * batch):
            yield [digest_from_raw(chunk[i : i + 32]) for i in range(0, len(chunk), 32)]

    def __iter__(self) -> Iterator[str]:
        """Every digest, from the first (each time: a transaction that runs again reads them
        again)."""
        for batch in self.batches():
            yield from batch

    def close(self) -> None:
        self._file.close()


def packed_blobs(store: Store, root: str) -> PackedDigests:
    """The blobs a manifest needs (``blob_batches``), read page by page and kept packed."""
    found = PackedDigests()
    for batch in blob_batches(store, root):
        found.extend(batch)
    return found


def check_client_manifest(store: Store, root: str) -> list[str]:
    """Check a manifest a client wrote as blobs (``CommitRequest.manifest``), page by page:
    every page present and well formed, paths safe, sorted and unique, and cut exactly as
    cairn cuts manifests (rebuilt and compared by digest, so equal contents keep equal
    digests). Returns the digests of its entries' content the store lacks."""
    reader = PageReader(lambda digest: _load_page(store, digest), capacity=8)
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
                missing += store.missing_blobs(list(dict.fromkeys(pending)))
                pending = []
        built = builder.finish()
    except (ValidationError, DigestMismatchError):
        raise  # a format error, a page not stored (``not_stored``) or damaged, as said
    except ValueError as exc:
        raise ManifestFormatError(f"manifest {root} refused: {exc}") from None
    if pending:
        missing += store.missing_blobs(list(dict.fromkeys(pending)))
    if built.digest != root:
        raise ManifestFormatError(
            f"manifest {root} refused: its pages are not cut as cairn cuts manifests"
            f" (rebuilt from its entries it is {built.digest})"
        )
    check_total_size(built)
    return list(dict.fromkeys(missing))


def every_blob(store: Store, root: str) -> list[str]:
    """Every page and file blob a committed version's manifest names (what a reader of a link
    must reach)."""
    out: list[str] = []
    for digest, node in walk(store, root):
        if node is None:
            raise BlobNotFoundError(f"manifest page {digest} is not in the store")
        out.append(digest)
        if isinstance(node, Leaf):
            out.extend(e.digest for e in node.entries if e.ref is None)
    return out


def closure(
    store: Store, root: str, unreadable: PageCheck | None = None
) -> tuple[list[str], list[str], list[str]]:
    """(pages, blobs, missing pages) of the manifest tree at ``root``: every page reachable
    from it that the store holds (and ``unreadable``, a server's key, does not name), the blobs
    their entries name, and the pages it lacks or the key may not read, whose subtrees are not
    read (``walk``)."""
    pages: list[str] = []
    blobs: dict[str, None] = {}
    missing: list[str] = []
    for digest, node in walk(store, root, unreadable):
        if node is None:
            missing.append(digest)
            continue
        pages.append(digest)
        if isinstance(node, Leaf):
            blobs.update((e.digest, None) for e in node.entries if e.ref is None)
    return pages, list(blobs), missing
