"""Paged manifests: a version's entries as a content-defined tree of pages.

The format is specified in ``docs/design.md`` ("Manifest"); this module is its only implementation.
In short: entries sorted by path are cut into *leaf pages* after every entry whose path hash has
its top ``LEAF_BITS`` bits zero; references to pages are cut the same way into *index pages*, level
by level, until one page remains: the root. Every page is stored as a blob named by its digest, and
the root's digest is the version digest. Because the cut points depend only on the entries, equal
entry sets give equal pages and an equal root digest, whatever history built them.

Nothing here does I/O. Functions that read pages take ``load(digest) -> bytes``; functions that
write take ``put(digest, data)``; the caller decides where pages live and caches them.
"""

from __future__ import annotations

import json
import zlib
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeAlias

from cairn.core._digest import digest_bytes
from cairn.core._names import entry_path_problem
from cairn.errors import ManifestFormatError

LEAF_FORMAT = "cairn.manifest.leaf/1"
INDEX_FORMAT = "cairn.manifest.index/1"
_MAX_LEVELS = 40

Json: TypeAlias = Any
Load: TypeAlias = Callable[[str], bytes]
Put: TypeAlias = Callable[[str, bytes], None]


class ManifestEntry(NamedTuple):
    """One file of a version: where it goes (``path``) and what it is.

    ``digest`` is the content digest for stored files and checksummed references; for a reference
    recorded without a checksum it is the URI itself (as in W&B). ``ref`` is the URI of a reference
    (None for content kept in the store). ``extra`` holds JSON facts that pin a reference (ETag,
    version id) or user data; it is part of the entry's identity.
    """

    path: str
    digest: str
    size: int | None = None
    ref: str | None = None
    extra: Mapping[str, Json] | None = None

    def to_row(self) -> list[Json]:
        row: list[Json] = [self.path, self.digest, self.size]
        if self.ref is not None or self.extra:
            row.append(self.ref)
        if self.extra:
            row.append(dict(self.extra))
        return row

    @staticmethod
    def from_row(row: Json) -> ManifestEntry:
        if not isinstance(row, list) or not 3 <= len(row) <= 5:
            raise ManifestFormatError(f"malformed manifest entry {row!r}")
        path, digest, size = row[0], row[1], row[2]
        ref = row[3] if len(row) > 3 else None
        extra = row[4] if len(row) > 4 else None
        if not isinstance(path, str) or not isinstance(digest, str):
            raise ManifestFormatError(f"malformed manifest entry {row!r}")
        if size is not None and (not isinstance(size, int) or size < 0):
            raise ManifestFormatError(f"malformed size in manifest entry {row!r}")
        if ref is not None and not isinstance(ref, str):
            raise ManifestFormatError(f"malformed reference in manifest entry {row!r}")
        if extra is not None and not isinstance(extra, dict):
            raise ManifestFormatError(f"malformed extra in manifest entry {row!r}")
        return ManifestEntry(path, digest, size, ref, extra or None)

    def same_content(self, other: ManifestEntry) -> bool:
        return (
            self.digest == other.digest
            and self.size == other.size
            and self.ref == other.ref
            and (self.extra or None) == (other.extra or None)
        )


class PageRef(NamedTuple):
    """A reference to a page: its first path, digest, and the entries and bytes below it."""

    first_path: str
    digest: str
    entry_count: int
    size: int
    level: int  # 0 for a leaf page


@dataclass(frozen=True, slots=True)
class Leaf:
    entries: tuple[ManifestEntry, ...]

    @property
    def level(self) -> int:
        return 0


@dataclass(frozen=True, slots=True)
class Index:
    level: int
    children: tuple[PageRef, ...]


Node: TypeAlias = Leaf | Index


# -- encoding ---------------------------------------------------------------------------------


def _dumps(obj: Json) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def encode_leaf(entries: Sequence[ManifestEntry]) -> bytes:
    rows = [
        [e.path, e.digest, e.size] if e.ref is None and not e.extra else e.to_row() for e in entries
    ]
    return _dumps({"format": LEAF_FORMAT, "entries": rows})


def encode_index(level: int, children: Sequence[PageRef]) -> bytes:
    rows = [[c.first_path, c.digest, c.entry_count, c.size] for c in children]
    return _dumps({"format": INDEX_FORMAT, "level": level, "children": rows})


def decode_node(data: bytes, *, check_paths: bool = True) -> Node:
    """Decode a page. Unknown formats and paths that could escape a directory are refused."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestFormatError(f"manifest page is not valid JSON: {exc}") from None
    fmt = doc.get("format") if isinstance(doc, dict) else None
    if fmt == LEAF_FORMAT:
        entries = tuple(ManifestEntry.from_row(r) for r in doc.get("entries", ()))
        if check_paths:
            for e in entries:
                problem = entry_path_problem(e.path)
                if problem is not None:
                    raise ManifestFormatError(
                        f"manifest refused: entry path {e.path[:200]!r} is unsafe ({problem})"
                    )
        return Leaf(entries)
    if fmt == INDEX_FORMAT:
        level = doc.get("level")
        rows = doc.get("children")
        if not isinstance(level, int) or level < 1 or not isinstance(rows, list) or not rows:
            raise ManifestFormatError("malformed manifest index page")
        children = []
        for r in rows:
            if not (isinstance(r, list) and len(r) == 4 and isinstance(r[0], str)):
                raise ManifestFormatError(f"malformed manifest index row {r!r}")
            children.append(PageRef(r[0], r[1], int(r[2]), int(r[3]), level - 1))
        return Index(level, tuple(children))
    if isinstance(fmt, str) and fmt.startswith("cairn.manifest."):
        raise ManifestFormatError(
            f"manifest page format {fmt!r} is not known to this version of cairn; upgrade cairn"
        )
    raise ManifestFormatError("blob is not a cairn manifest page")


# -- cut points -------------------------------------------------------------------------------

_GOLDEN = 0x9E3779B1  # 2^32 / golden ratio: multiplying by it spreads every input bit to the top
_MASK = 0xFFFFFFFF
LEAF_BITS = 9  # a leaf ends where the top 9 bits of the hash are zero: 1 entry in 512
INDEX_BITS = 6  # an index page ends where the top 6 bits are zero: 1 child in 64


def path_hash(path: str, level: int = 0) -> int:
    """The 32-bit hash of ``path`` that decides cut points at ``level`` (see docs/design.md)."""
    salt = (level * 0x85EBCA6B) & _MASK
    return ((zlib.crc32(path.encode()) ^ salt) * _GOLDEN) & _MASK


def is_leaf_boundary(path: str) -> bool:
    return ((zlib.crc32(path.encode()) * _GOLDEN) & _MASK) >> (32 - LEAF_BITS) == 0


def _is_index_boundary(level: int, first_path: str) -> bool:
    return path_hash(first_path, level) >> (32 - INDEX_BITS) == 0


# -- building ---------------------------------------------------------------------------------


def _store(data: bytes, put: Put) -> str:
    digest = digest_bytes(data)
    put(digest, data)
    return digest


def _write_leaf(entries: Sequence[ManifestEntry], put: Put) -> PageRef:
    digest = _store(encode_leaf(entries), put)
    size = sum(e.size or 0 for e in entries)
    first = entries[0].path if entries else ""
    return PageRef(first, digest, len(entries), size, 0)


def _split(items: list[Any], level: int) -> tuple[list[list[Any]], list[Any]]:
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


def _write_page(items: Sequence[Any], level: int, put: Put) -> PageRef:
    if level == 0:
        return _write_leaf(items, put)
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
        return _write_leaf([], put)
    refs = list(pages)
    while len(refs) > 1:
        groups, rest = _split(refs, level)
        if rest:
            groups.append(rest)
        refs = [_write_page(group, level, put) for group in groups]
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
            if ((crc32(path.encode()) * _GOLDEN) & _MASK) >> shift == 0:  # is_leaf_boundary
                self._leaves.append(_write_leaf(page, self._put))
                page = self._page = []
        self._previous = previous

    @property
    def count(self) -> int:
        """Entries added so far."""
        return sum(ref.entry_count for ref in self._leaves) + len(self._page)

    def finish(self) -> PageRef:
        if self._page or not self._leaves:
            self._leaves.append(_write_leaf(self._page, self._put))
            self._page = []
        return build_index(self._leaves, self._put)


def build_tree(entries: Iterable[ManifestEntry], put: Put) -> PageRef:
    """Write the pages of a manifest holding ``entries`` (sorted by path, paths unique)."""
    builder = TreeBuilder(put)
    builder.extend(entries)
    return builder.finish()


# -- reading ----------------------------------------------------------------------------------


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


# -- incremental update -----------------------------------------------------------------------

Change: TypeAlias = tuple[str, ManifestEntry | None]  # (path, new entry) or (path, None) to remove


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
            complete, carry = _split(carry, level)
            for chunk in complete:
                ref = _write_page(chunk, level, put)
                out[ref.first_path] = ref
            if not carry:
                break  # the new pages end where an old one did: the rest of the level is unchanged
            if not cursor.advance():
                ref = _write_page(carry, level, put)  # the end of the level: no cut point needed
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
        return _write_leaf([], put)
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


# -- diff -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ManifestDiff:
    added: tuple[ManifestEntry, ...]
    removed: tuple[ManifestEntry, ...]
    modified: tuple[tuple[ManifestEntry, ManifestEntry], ...]  # (old, new)

    def changes(self) -> list[Change]:
        """The changes that turn the old manifest into the new one, sorted by path."""
        out: list[Change] = [(e.path, e) for e in self.added]
        out += [(e.path, None) for e in self.removed]
        out += [(new.path, new) for _, new in self.modified]
        return sorted(out, key=lambda c: c[0])

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.modified)


class _Cursor:
    """Walks a tree in path order, expanding pages only when asked to."""

    def __init__(self, reader: PageReader, root: str) -> None:
        self._reader = reader
        self.stack: list[PageRef | ManifestEntry] = [reader.root_ref(root)]

    def expand(self) -> None:
        ref = self.stack.pop()
        assert isinstance(ref, PageRef)
        node = self._reader.node(ref.digest)
        if isinstance(node, Leaf):
            self.stack.extend(reversed(node.entries))
        else:
            self.stack.extend(reversed(node.children))

    def drain(self) -> Iterator[ManifestEntry]:
        while self.stack:
            top = self.stack[-1]
            if isinstance(top, PageRef):
                self.expand()
            else:
                self.stack.pop()
                yield top


def _key(item: PageRef | ManifestEntry) -> str:
    return item.first_path if isinstance(item, PageRef) else item.path


def diff_trees(reader: PageReader, old: str, new: str) -> ManifestDiff:
    """What changed from ``old`` to ``new``; pages with equal digests are skipped unread."""
    added: list[ManifestEntry] = []
    removed: list[ManifestEntry] = []
    modified: list[tuple[ManifestEntry, ManifestEntry]] = []
    if old != new:
        a, b = _Cursor(reader, old), _Cursor(reader, new)
        while a.stack and b.stack:
            x, y = a.stack[-1], b.stack[-1]
            x_page, y_page = isinstance(x, PageRef), isinstance(y, PageRef)
            kx, ky = _key(x), _key(y)
            if x_page and y_page:
                assert isinstance(x, PageRef) and isinstance(y, PageRef)
                if x.digest == y.digest:
                    a.stack.pop()
                    b.stack.pop()
                elif kx < ky or (kx == ky and x.level >= y.level):
                    a.expand()
                    if kx == ky and x.level == y.level:
                        b.expand()
                else:
                    b.expand()
            elif x_page:
                if kx <= ky:
                    a.expand()
                else:
                    b.stack.pop()
                    added.append(y)  # type: ignore[arg-type]
            elif y_page:
                if ky <= kx:
                    b.expand()
                else:
                    a.stack.pop()
                    removed.append(x)  # type: ignore[arg-type]
            else:
                assert isinstance(x, ManifestEntry) and isinstance(y, ManifestEntry)
                if kx == ky:
                    a.stack.pop()
                    b.stack.pop()
                    if not x.same_content(y):
                        modified.append((x, y))
                elif kx < ky:
                    a.stack.pop()
                    removed.append(x)
                else:
                    b.stack.pop()
                    added.append(y)
        removed.extend(a.drain())
        added.extend(b.drain())
    return ManifestDiff(tuple(added), tuple(removed), tuple(modified))
