"""Building a paged manifest from sorted entries: the cut points (where a page ends, decided by
each path's hash alone) and the pages written level by level (see docs/design.md, "Manifest")."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from typing import Any

from cairn.core._digest import digest_bytes
from cairn.core._manifest import ManifestEntry, PageRef, Put, encode_index, encode_leaf

_MAX_LEVELS = 40

# -- cut points -------------------------------------------------------------------------------

_GOLDEN = 0x9E3779B1  # 2^32 / golden ratio: multiplying by it spreads every input bit to the top
_MASK = 0xFFFFFFFF
LEAF_BITS = 9  # a leaf ends where the top 9 bits of the hash are zero: 1 entry in 512
INDEX_BITS = 6  # an index page ends where the top 6 bits are zero: 1 child in 64


def path_hash(path: str, level: int = 0) -> int:
    """The 32-bit hash of ``path`` that decides cut points at ``level`` (see docs/design.md)."""
    salt = (level * 0x85EBCA6B) & _MASK
    return ((zlib.crc32(path.encode()) ^ salt) * _GOLDEN) & _MASK


def _is_index_boundary(level: int, first_path: str) -> bool:
    return path_hash(first_path, level) >> (32 - INDEX_BITS) == 0


# -- building ---------------------------------------------------------------------------------


def _store(data: bytes, put: Put) -> str:
    digest = digest_bytes(data)
    put(digest, data)
    return digest


def write_leaf(entries: Sequence[ManifestEntry], put: Put) -> PageRef:
    digest = _store(encode_leaf(entries), put)
    size = sum(e.size or 0 for e in entries)
    first = entries[0].path if entries else ""
    return PageRef(first, digest, len(entries), size, 0)


def split_at_cuts(items: list[Any], level: int) -> tuple[list[list[Any]], list[Any]]:
    """Cut a level's items after each cut point: (complete pages, the unfinished rest).

    ``items`` are entries (level 0) or references to pages one level down (level >= 1), and the
    first of them starts a page (it follows a cut point, or it is the first of its level).
    """
    pages: list[list[Any]] = []
    start = 0
    if level == 0:
        shift = 32 - LEAF_BITS
        crc32 = zlib.crc32
        for i, e in enumerate(items):
            if ((crc32(e.path.encode()) * _GOLDEN) & _MASK) >> shift == 0:
                pages.append(items[start : i + 1])
                start = i + 1
        return pages, items[start:]
    for i, ref in enumerate(items):
        # At least two children per index page, so every level shrinks; at the top a forced
        # single page keeps a degenerate hash distribution from stacking levels forever.
        if i + 1 - start >= 2 and level < _MAX_LEVELS and _is_index_boundary(level, ref.first_path):
            pages.append(items[start : i + 1])
            start = i + 1
    return pages, items[start:]


def write_page(items: Sequence[Any], level: int, put: Put) -> PageRef:
    if level == 0:
        return write_leaf(items, put)
    digest = _store(encode_index(level, items), put)
    return PageRef(
        items[0].first_path,
        digest,
        sum(c.entry_count for c in items),
        sum(c.size for c in items),
        level,
    )


def build_index(pages: Sequence[PageRef], put: Put, level: int = 1) -> PageRef:
    """Stack index levels over ``pages`` (of level ``level - 1``) until one page remains."""
    if not pages:
        return write_leaf([], put)
    refs = list(pages)
    while len(refs) > 1:
        groups, rest = split_at_cuts(refs, level)
        if rest:
            groups.append(rest)
        refs = [write_page(group, level, put) for group in groups]
        level += 1
    return refs[0]


class TreeBuilder:
    """Writes the pages of a manifest as its entries arrive (sorted by path, paths unique).

    Each leaf page is encoded and handed to ``put`` as soon as its cut point is reached, so only
    the unfinished page and one reference per written page (1 in 512 entries) are held: a
    million-entry manifest is built in a few MiB. ``finish`` writes the index levels.
    """

    __slots__ = ("_leaves", "_page", "_previous", "_put")

    def __init__(self, put: Put) -> None:
        self._put = put
        self._leaves: list[PageRef] = []
        self._page: list[ManifestEntry] = []
        self._previous: str | None = None

    def add(self, entry: ManifestEntry) -> None:
        self.extend((entry,))

    def extend(self, entries: Iterable[ManifestEntry]) -> None:
        page, previous = self._page, self._previous
        crc32 = zlib.crc32
        shift = 32 - LEAF_BITS
        for e in entries:
            path = e.path
            if previous is not None and path <= previous:
                raise ValueError(f"entries must be sorted by path and unique: {path!r}")
            previous = path
            page.append(e)
            # A leaf cut: path_hash(path) (level 0) has its top LEAF_BITS bits zero.
            if ((crc32(path.encode()) * _GOLDEN) & _MASK) >> shift == 0:
                self._leaves.append(write_leaf(page, self._put))
                page = self._page = []
        self._previous = previous

    @property
    def count(self) -> int:
        """Entries added so far."""
        return sum(ref.entry_count for ref in self._leaves) + len(self._page)

    def finish(self) -> PageRef:
        if self._page or not self._leaves:
            self._leaves.append(write_leaf(self._page, self._put))
            self._page = []
        return build_index(self._leaves, self._put)


def build_tree(entries: Iterable[ManifestEntry], put: Put) -> PageRef:
    """Write the pages of a manifest holding ``entries`` (sorted by path, paths unique)."""
    builder = TreeBuilder(put)
    builder.extend(entries)
    return builder.finish()
