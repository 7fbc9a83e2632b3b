"""The one walk of a manifest's pages (``_manifests.walk``): level by level, nothing read below a
page the store lacks or a server's key may not read (review S10, and its follow-up: a tree of
three levels, too large to build from entries in a test, built here page by page)."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace
from typing import Any

from cairn.core import ManifestEntry, PageRef, digest_bytes, encode_leaf
from cairn.core._manifest import encode_index
from cairn.service import _manifests as manifests
from cairn.storage import MemoryBlobStore


class _Counted(MemoryBlobStore):
    def __init__(self) -> None:
        super().__init__()
        self.read: Counter[str] = Counter()

    def get(self, digest: str) -> bytes:
        self.read[digest] += 1
        return super().get(digest)


def _page(blobs: MemoryBlobStore, data: bytes, first: str, count: int, level: int) -> PageRef:
    digest = digest_bytes(data)
    blobs.put(digest, data)
    return PageRef(first, digest, count, count, level)


def test_nothing_below_a_refused_page_is_read() -> None:
    """Root (level 2) over two index pages over a leaf each: a key that may not read the second
    index page gets it answered as missing, and neither its leaf nor that leaf's file digests
    are read or named; every other page is read once."""
    blobs = _Counted()
    files = [ManifestEntry(f"{d}/f", digest_bytes(d.encode()), 1) for d in ("a", "b")]
    leaves = [_page(blobs, encode_leaf([e]), e.path, 1, 0) for e in files]
    index = [_page(blobs, encode_index(1, [leaf]), leaf.first_path, 1, 1) for leaf in leaves]
    root = _page(blobs, encode_index(2, index), "a/f", 2, 2).digest
    store: Any = SimpleNamespace(blobs=blobs)
    asked: list[list[str]] = []

    def unreadable(pages: list[str]) -> list[str]:
        asked.append(pages)
        return [d for d in pages if d == index[1].digest]

    pages, named, missing = manifests.closure(store, root, unreadable)
    assert pages == [root, index[0].digest, leaves[0].digest]
    assert missing == [index[1].digest] and named == [files[0].digest]
    assert asked == [[root], [index[0].digest, index[1].digest], [leaves[0].digest]]  # one a level
    assert blobs.read == Counter(pages)  # each once; nothing of the refused subtree
    # Without a key (the embedded store), the whole tree, each page once.
    blobs.read.clear()
    assert manifests.every_blob(store, root) == [
        root,
        index[0].digest,
        index[1].digest,
        leaves[0].digest,
        files[0].digest,
        leaves[1].digest,
        files[1].digest,
    ]
    assert set(blobs.read.values()) == {1}
