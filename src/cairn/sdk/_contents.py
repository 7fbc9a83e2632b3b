"""The entries of an artifact: a committed base (read lazily) plus local changes.

A new artifact has no base; a committed one has a base and no changes; a draft has both. Reading
goes through the changes first, then the base's pages, loaded only when a path falls in them, so a
draft of a million-entry version costs nothing until it is read, and committing it sends only the
changes.

A large directory added to an artifact becomes a *local base*: the directory's entries merged in
path order with the artifact's entries so far (a draft's base version and its changes) go into
manifest pages written to the store as the directory is walked (never held whole), and the commit
names that manifest (``CommitRequest.manifest``) with any later changes on top; a draft's base
version stays its base (lineage, diffs).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from cairn.core import Change, ManifestEntry, PageReader


class Contents:
    def __init__(
        self,
        reader: PageReader | None = None,
        root: str | None = None,
        base_count: int = 0,
        base_size: int = 0,
    ) -> None:
        self._reader = reader
        self._root = root
        self._base_count = base_count
        self._base_size = base_size
        self.local_base = False  # the base is a manifest written by this artifact, not a version
        self._version_root: str | None = None  # a local base's draft version (its root)
        self.overlay: dict[str, ManifestEntry] = {}
        self.removed: set[str] = set()
        # Counts kept up to date on every change, so len() never reads a page.
        self._delta_count = 0
        self._delta_size = 0
        self.generation = 0  # counts changes (a tree record is kept only for unchanged contents)

    @property
    def changed(self) -> bool:
        return bool(self.overlay or self.removed)

    @property
    def empty_new(self) -> bool:
        """Nothing added yet and no base: a new artifact's first add."""
        return self._root is None and not self.overlay and not self.removed

    @property
    def root(self) -> str | None:
        return self._root

    def set_local_base(self, reader: PageReader, root: str, count: int, size: int) -> None:
        """Make the manifest at ``root`` (written to the store by this artifact, holding every
        entry these contents had and more) the base: the changes so far are in it."""
        if not self.local_base:
            self._version_root = self._root
        self._reader, self._root = reader, root
        self._base_count, self._base_size = count, size
        self.overlay = {}
        self.removed = set()
        self._delta_count = self._delta_size = 0
        self.local_base = True
        self.generation += 1

    def _base_get(self, path: str) -> ManifestEntry | None:
        if self._reader is None or self._root is None:
            return None
        return self._reader.get(self._root, path)

    def get(self, path: str) -> ManifestEntry | None:
        entry = self.overlay.get(path)
        if entry is not None:
            return entry
        if path in self.removed:
            return None
        return self._base_get(path)

    def __len__(self) -> int:
        return self._base_count + self._delta_count

    @property
    def size(self) -> int:
        return self._base_size + self._delta_size

    def put(self, entry: ManifestEntry) -> None:
        self.generation += 1
        old = self.get(entry.path)
        if old is not None:
            self._delta_count -= 1
            self._delta_size -= old.size or 0
        self.overlay[entry.path] = entry
        self.removed.discard(entry.path)
        self._delta_count += 1
        self._delta_size += entry.size or 0

    def put_many(self, entries: list[ManifestEntry], *, overwrite: bool) -> str | None:
        """Add entries; without ``overwrite``, stop at the first path already present with other
        content and return it (nothing after it is added)."""
        self.generation += 1
        if not self.overlay and not self.removed and self._root is None:
            # A fresh artifact: nothing to compare against but the batch itself.
            overlay = dict(zip((e.path for e in entries), entries, strict=True))
            if len(overlay) == len(entries):
                self.overlay = overlay
                self._delta_count = len(entries)
                self._delta_size = sum(e.size or 0 for e in entries)
                return None
        for e in entries:
            old = self.get(e.path)
            if old is not None and not overwrite and not old.same_content(e):
                return e.path
            self.put(e)
        return None

    def delete(self, path: str) -> bool:
        old = self.get(path)
        if old is None:
            return False
        self.generation += 1
        self.overlay.pop(path, None)
        if self._base_get(path) is not None:
            self.removed.add(path)
        self._delta_count -= 1
        self._delta_size -= old.size or 0
        return True

    def iter_from(self, start: str = "") -> Iterator[ManifestEntry]:
        """Entries with ``path >= start``, in path order."""
        local = sorted(p for p in self.overlay if p >= start)
        local_iter = (self.overlay[p] for p in local)
        if self._reader is None or self._root is None:
            yield from local_iter
            return
        hidden = self.removed
        overlay = self.overlay
        base_iter = (
            e
            for e in self._reader.iter_from(self._root, start)
            if e.path not in hidden and e.path not in overlay
        )
        yield from heapq.merge(base_iter, local_iter, key=lambda e: e.path)

    def __iter__(self) -> Iterator[ManifestEntry]:
        return self.iter_from("")

    def iter_prefix(self, prefix: str) -> Iterator[ManifestEntry]:
        for e in self.iter_from(prefix):
            if not e.path.startswith(prefix):
                return
            yield e

    def changes(self) -> list[Change]:
        """What to send to commit: every local change, sorted by path."""
        out: list[Change] = [(p, e) for p, e in self.overlay.items()]
        out += [(p, None) for p in self.removed]
        out.sort(key=lambda c: c[0])
        return out

    def all_changes(self) -> list[Change]:
        """Changes that build these contents from the draft's base version (from nothing for a
        new artifact): a local base is sent whole, or as its difference from the version."""
        if not self.local_base:
            return self.changes()
        if self._version_root is None:
            return [(e.path, e) for e in self]
        assert self._reader is not None
        return list(_difference(self._reader.iter_from(self._version_root, ""), iter(self)))


def _difference(old: Iterator[ManifestEntry], new: Iterator[ManifestEntry]) -> Iterator[Change]:
    """The changes that turn ``old`` into ``new`` (both in path order), in path order."""
    a, b = next(old, None), next(new, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a.path < b.path):
            assert a is not None
            yield a.path, None
            a = next(old, None)
        elif a is None or b.path < a.path:
            yield b.path, b
            b = next(new, None)
        else:
            if a != b:
                yield b.path, b
            a, b = next(old, None), next(new, None)
