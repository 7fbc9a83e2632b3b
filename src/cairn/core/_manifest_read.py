"""Reading a paged manifest: one entry, a range in path order, a prefix, its leaves; pages
loaded through ``load(digest)`` and kept in a small cache."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator

from cairn.core._manifest import Index, Leaf, Load, ManifestEntry, Node, PageRef, decode_node


class PageReader:
    """Decodes pages through ``load``, keeping recently used ones (pages never change)."""

    def __init__(self, load: Load, capacity: int = 256) -> None:
        self._load = load
        self._capacity = capacity
        self._cache: dict[str, Node] = {}

    def node(self, digest: str) -> Node:
        node = self._cache.pop(digest, None)
        if node is None:
            node = decode_node(self._load(digest))
            if len(self._cache) >= self._capacity:
                del self._cache[next(iter(self._cache))]
        self._cache[digest] = node  # most recent last
        return node

    def root_ref(self, digest: str) -> PageRef:
        node = self.node(digest)
        if isinstance(node, Leaf):
            size = sum(e.size or 0 for e in node.entries)
            first = node.entries[0].path if node.entries else ""
            return PageRef(first, digest, len(node.entries), size, 0)
        count = sum(c.entry_count for c in node.children)
        size = sum(c.size for c in node.children)
        return PageRef(node.children[0].first_path, digest, count, size, node.level)

    def get(self, root: str, path: str) -> ManifestEntry | None:
        node = self.node(root)
        while isinstance(node, Index):
            i = bisect_right(node.children, path, key=lambda c: c.first_path) - 1
            if i < 0:
                return None
            node = self.node(node.children[i].digest)
        i = bisect_left(node.entries, path, key=lambda e: e.path)
        if i < len(node.entries) and node.entries[i].path == path:
            return node.entries[i]
        return None

    def iter_from(self, root: str, start: str = "") -> Iterator[ManifestEntry]:
        """Entries with ``path >= start`` in path order, loading pages as they are reached."""
        yield from self._iter_node(root, start)

    def _iter_node(self, digest: str, start: str) -> Iterator[ManifestEntry]:
        node = self.node(digest)
        if isinstance(node, Leaf):
            i = bisect_left(node.entries, start, key=lambda e: e.path) if start else 0
            yield from node.entries[i:]
            return
        i = max(0, bisect_right(node.children, start, key=lambda c: c.first_path) - 1)
        for k, child in enumerate(node.children[i:]):
            yield from self._iter_node(child.digest, start if k == 0 else "")

    def iter_prefix(self, root: str, prefix: str) -> Iterator[ManifestEntry]:
        for e in self.iter_from(root, prefix):
            if not e.path.startswith(prefix):
                return
            yield e

    def leaves(self, root: str) -> list[PageRef]:
        """References to every leaf page in order (reads only index pages)."""
        top = self.root_ref(root)
        if top.level == 0:
            return [top]
        out: list[PageRef] = []
        stack = [top]
        while stack:
            ref = stack.pop()
            node = self.node(ref.digest)
            assert isinstance(node, Index)
            if node.level == 1:
                out.extend(node.children)
            else:
                stack.extend(reversed(node.children))
        return out
