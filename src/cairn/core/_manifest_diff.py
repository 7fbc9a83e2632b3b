"""The difference of two paged manifests: equal subtrees (same page digest) are skipped unread,
so a small change between two large versions reads few pages."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from cairn.core._manifest import Change, Leaf, ManifestEntry, PageRef
from cairn.core._manifest_read import PageReader


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
