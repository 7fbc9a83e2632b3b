"""Updating a paged manifest by changes: only the pages the changes touch (and the index pages
above them) are rewritten; the result equals a tree built from scratch from the same entries."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from typing import Any

from cairn.core._manifest import Change, Index, Leaf, PageRef, Put, decode_node
from cairn.core._manifest_build import build_index, split_at_cuts, write_leaf, write_page
from cairn.core._manifest_read import PageReader


def _item_key(item: Any) -> str:
    return item.first_path if isinstance(item, PageRef) else item.path


def _merge(items: Sequence[Any], changes: Sequence[tuple[str, Any]]) -> list[Any]:
    """Apply keyed changes (key, new item or None) to items sorted by key."""
    out: list[Any] = []
    i = 0
    n = len(items)
    for key, new in changes:
        while i < n and _item_key(items[i]) < key:
            out.append(items[i])
            i += 1
        if i < n and _item_key(items[i]) == key:
            i += 1  # replaced or removed
        if new is not None:
            out.append(new)
    out.extend(items[i:])
    return out


class _LevelCursor:
    """Walks the pages of one level of a tree in order, loading only the index pages above the
    pages it visits (a B-tree cursor)."""

    def __init__(self, reader: PageReader, top: PageRef, level: int) -> None:
        self._reader = reader
        self._top = top
        self._level = level
        self._stack: list[tuple[Index, int]] = []
        self.current = top

    def seek(self, key: str) -> None:
        """Stand on the last page of the level whose first key is <= ``key`` (or the first)."""
        self._stack.clear()
        ref = self._top
        while ref.level > self._level:
            node = self._reader.node(ref.digest)
            assert isinstance(node, Index)
            i = max(0, bisect_right(node.children, key, key=lambda c: c.first_path) - 1)
            self._stack.append((node, i))
            ref = node.children[i]
        self.current = ref

    def next_first(self) -> str | None:
        """The first key of the page after the current one (None at the end of the level)."""
        for node, i in reversed(self._stack):
            if i + 1 < len(node.children):
                return node.children[i + 1].first_path
        return None

    def advance(self) -> bool:
        while self._stack and self._stack[-1][1] + 1 >= len(self._stack[-1][0].children):
            self._stack.pop()
        if not self._stack:
            return False
        node, i = self._stack.pop()
        self._stack.append((node, i + 1))
        ref = node.children[i + 1]
        while ref.level > self._level:
            child = self._reader.node(ref.digest)
            assert isinstance(child, Index)
            self._stack.append((child, 0))
            ref = child.children[0]
        self.current = ref
        return True


def _update_level(
    reader: PageReader, top: PageRef, level: int, changes: Sequence[tuple[str, Any]], put: Put
) -> list[tuple[str, PageRef | None]]:
    """Apply changes to the items of the pages at ``level``; return the changes this makes to
    the level above: old page references removed, new ones added (keyed by first path)."""
    cursor = _LevelCursor(reader, top, level)
    out: dict[str, PageRef | None] = {}
    j, n = 0, len(changes)
    while j < n:
        cursor.seek(changes[j][0])
        carry: list[Any] = []
        while True:
            page = cursor.current
            upper = cursor.next_first()
            k = j
            while k < n and (upper is None or changes[k][0] < upper):
                k += 1
            node = reader.node(page.digest)
            items: Sequence[Any] = node.entries if isinstance(node, Leaf) else node.children
            carry.extend(_merge(items, changes[j:k]))
            j = k
            out.setdefault(page.first_path, None)  # the old page goes, unless rewritten as is
            complete, carry = split_at_cuts(carry, level)
            for chunk in complete:
                ref = write_page(chunk, level, put)
                out[ref.first_path] = ref
            if not carry:
                break  # the new pages end where an old one did: the rest of the level is unchanged
            if not cursor.advance():
                ref = write_page(carry, level, put)  # the end of the level: no cut point needed
                out[ref.first_path] = ref
                break
    return sorted(out.items())


def update_tree(reader: PageReader, root: str, changes: Sequence[Change], put: Put) -> PageRef:
    """Apply ``changes`` (sorted by path, unique) to the manifest at ``root``.

    Only the pages the changes fall in are read and rewritten (plus, where a removed item was a
    cut point, the page after), level by level up to the root; every other page is reused by
    reference. Cost: O(changes x depth x page size), whatever the size of the manifest.
    """
    top = reader.root_ref(root)
    if not changes:
        return top
    written: dict[str, bytes] = {}

    def record(digest: str, data: bytes) -> None:
        written[digest] = data
        put(digest, data)

    # Only index pages are kept (to find the new root below); leaves go straight to ``put``,
    # so changes falling in thousands of leaves do not hold them all in memory.
    level_changes: Sequence[tuple[str, Any]] = changes
    level = 0
    while level < top.level:
        level_changes = _update_level(reader, top, level, level_changes, record if level else put)
        level += 1
    # The root's own level: the root is the whole level, and it may split or empty out.
    last = _update_level(reader, top, level, level_changes, record if level else put)
    pages = [ref for _, ref in last if ref]
    if not pages:
        return write_leaf([], put)
    if len(pages) > 1:
        return build_index(pages, put, level + 1)
    new_root = pages[0]
    while new_root.level > 0:  # a root with one child is not a root: its child is
        data = written.get(new_root.digest)
        node = decode_node(data) if data is not None else reader.node(new_root.digest)
        assert isinstance(node, Index)
        if len(node.children) != 1:
            break
        new_root = node.children[0]
    return new_root
