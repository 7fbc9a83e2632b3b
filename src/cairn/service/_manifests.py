"""Manifest pages on the store's side.

Building a version's manifest from changes (only the changed pages when there is a base),
checking a manifest a client wrote as blobs (``CommitRequest.manifest``) page by page, and
walking a manifest for the pages and blobs it names (a server's grants, ``cairn sync``). The
format itself is ``cairn.core``'s; this is where the store reads and writes it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator, Sequence

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
    digest_from_raw,
    digest_raw,
    update_tree,
)
from cairn.errors import BlobNotFoundError, ManifestFormatError, ValidationError
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


def _load_page(store: Store, digest: str) -> bytes:
    try:
        return store.blobs.get(check_digest(digest))
    except BlobNotFoundError:
        raise ValidationError(
            f"manifest page {digest} is not in the store at {store.location}: store the"
            " manifest's pages before committing it (log the artifact again)"
        ) from None


def _index_pages(reader: PageReader, root: str) -> list[str]:
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


def blob_batches(store: Store, root: str, batch: int = 10_000) -> Iterator[list[str]]:
    """The blobs a manifest needs (its pages, and its entries' stored content), in batches:
    read page by page, never the whole manifest at once."""
    reader = PageReader(lambda digest: _load_page(store, digest), capacity=8)
    leaves = reader.leaves(root)
    out: list[str] = [root, *_index_pages(reader, root)]
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
    except ManifestFormatError:
        raise
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
    """Every page and file blob a manifest names (what a reader of a link must reach)."""
    out: list[str] = []
    stack = [root]
    while stack:
        digest = stack.pop()
        out.append(digest)
        node = store.reader.node(digest)
        if isinstance(node, Leaf):
            out.extend(e.digest for e in node.entries if e.ref is None)
        else:
            stack.extend(c.digest for c in node.children)
    return out


def closure(store: Store, root: str) -> tuple[list[str], list[str], list[str]]:
    """(pages, blobs, missing pages) of the manifest tree at ``root``: every page reachable
    from it that the store holds, the blobs their entries name, and the pages it lacks (whose
    subtrees could not be read)."""
    pages: list[str] = []
    blobs: dict[str, None] = {}
    missing: list[str] = []
    level = [root]
    while level:
        present = store.blobs.has_many(level)
        below: list[str] = []
        for digest in dict.fromkeys(level):
            if digest not in present:
                missing.append(digest)
                continue
            pages.append(digest)
            node = store.reader.node(digest)
            if isinstance(node, Index):
                below.extend(c.digest for c in node.children)
            else:
                blobs.update((e.digest, None) for e in node.entries if e.ref is None)
        level = below
    return pages, list(blobs), missing
