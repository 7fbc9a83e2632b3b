"""A directory of a version's manifest, listed without reading the whole manifest.

Entries are sorted by path, so the entries below a directory ``d/`` form one contiguous run, and so
do those below each of its children. The listing walks the page tree from the root and, for every
page (leaf or whole subtree) whose path range lies inside one child directory, takes that page's
entry count and byte total from the index page above it instead of reading it: only the pages that
hold a boundary between two children are read. This is the skip-scan of ``PageReader.iter_from``
(jump past ``a/...`` once ``a/`` is seen) done on the tree itself, which also gives each child
directory its size and file count for free. Cost: at most about one leaf per child listed, whatever the
size of the directories, and a listing page stops after ``PAGE_READS`` page reads (it then ends
early, with a link to the rest), so a page of a 1,000,000-entry version never reads the 2,000
leaves the version has.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

from cairn.core import Index, ManifestEntry, PageReader, PageRef

PAGE_SIZE = 500  # children per page at most
PAGE_READS = 160  # pages read per listing at most: bounds the time of one request


@dataclass(frozen=True, slots=True)
class TreeItem:
    """A child of a listed directory: a file (with its entry) or a directory (with totals)."""

    name: str  # the child's own name, without the directory's path
    path: str  # the full path; a directory's ends with "/"
    is_dir: bool
    size: int  # bytes; for a directory, every file below it (unknown sizes count 0)
    files: int  # 1 for a file; for a directory, the number of files below it
    entry: ManifestEntry | None = None


@dataclass(frozen=True, slots=True)
class DirListing:
    prefix: str  # "" for the root, else "a/b/"
    items: tuple[TreeItem, ...]
    next_start: str | None  # pass as ``start`` for the next page; None on the last page
    pages_read: int  # pages looked at (tests check the skipping with it)


def _path(entry: ManifestEntry) -> str:
    return entry.path


def directory_end(prefix: str) -> str | None:
    """The smallest path after every path that starts with ``prefix`` ("a/" -> "a0")."""
    if not prefix:
        return None
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


@dataclass
class _Walk:
    reader: PageReader
    prefix: str
    low: str  # first path of interest (the directory, or the page's start)
    high: str | None  # first path after the directory
    limit: int
    max_pages: int
    items: list[TreeItem] = field(default_factory=list)
    next_start: str | None = None
    done: bool = False
    pages: int = 0

    def child_of(self, path: str) -> tuple[str, bool]:
        rest = path[len(self.prefix) :]
        cut = rest.find("/")
        return (rest, False) if cut < 0 else (rest[:cut], True)

    def add(
        self, name: str, is_dir: bool, size: int, files: int, entry: ManifestEntry | None
    ) -> None:
        last = self.items[-1] if self.items else None
        if last is not None and last.is_dir and is_dir and last.name == name:
            self.items[-1] = TreeItem(
                name, last.path, True, last.size + size, last.files + files, None
            )
            return
        path = self.prefix + name + ("/" if is_dir else "")
        if len(self.items) >= self.limit:
            self.next_start = path
            self.done = True
            return
        self.items.append(TreeItem(name, path, is_dir, size, files, entry))

    def visit(self, ref_digest: str, high: str | None) -> None:
        """Visit the page ``ref_digest`` whose paths all come before ``high`` (None: no bound)."""
        if self.pages >= self.max_pages and len(self.items) >= 2:
            # Out of reads: end the page before its last child, which may go on in this page.
            self.next_start = self.items.pop().path
            self.done = True
            return
        node = self.reader.node(ref_digest)
        self.pages += 1
        if isinstance(node, Index):
            self._visit_index(node, high)
            return
        entries = node.entries
        i = bisect_left(entries, self.low, key=_path) if self.low else 0
        n = len(entries)
        while i < n and not self.done:
            e = entries[i]
            if self.high is not None and e.path >= self.high:
                self.done = True
                return
            name, is_dir = self.child_of(e.path)
            if not is_dir:
                self.add(name, False, e.size or 0, 1, e)
                i += 1
                continue
            # Every entry of this child directory in the page, in one step.
            end = bisect_left(entries, self.prefix + name + "0", lo=i, key=_path)
            size = sum(x.size or 0 for x in entries[i:end])
            self.add(name, True, size, end - i, None)
            i = end

    def _visit_index(self, node: Index, high: str | None) -> None:
        children = node.children
        for k, child in enumerate(children):
            upper = children[k + 1].first_path if k + 1 < len(children) else high
            if upper is not None and upper <= self.low:
                continue  # every path of this child comes before the listing starts
            if self.high is not None and child.first_path >= self.high:
                self.done = True
                return
            if not self._take_whole(child, upper):
                self.visit(child.digest, upper)
            if self.done:
                return

    def _take_whole(self, child: PageRef, upper: str | None) -> bool:
        """Count a page without reading it when all its paths are in one child directory."""
        first = child.first_path
        if upper is None or first < self.low or not first.startswith(self.prefix):
            return False
        name, is_dir = self.child_of(first)
        if not is_dir or not upper.startswith(self.prefix + name + "/"):
            return False
        self.add(name, True, child.size, child.entry_count, None)
        return True


def list_directory(
    reader: PageReader,
    root: str,
    prefix: str = "",
    *,
    start: str = "",
    limit: int = PAGE_SIZE,
    max_pages: int = PAGE_READS,
) -> DirListing:
    """The children of directory ``prefix`` ("" or ending in "/") of the manifest at ``root``,
    in path order, from ``start`` (a ``next_start`` of a previous page) on.

    A page ends after ``limit`` children, or earlier once ``max_pages`` pages have been read
    (a directory of small subdirectories costs about one page read per child), so one request
    takes bounded time whatever the manifest's shape; ``next_start`` then continues the listing.
    """
    if prefix and not prefix.endswith("/"):
        raise ValueError(f"a directory prefix ends with '/': {prefix!r}")
    walk = _Walk(
        reader, prefix, max(prefix, start), directory_end(prefix), max(1, limit), max_pages
    )
    walk.visit(root, None)
    return DirListing(prefix, tuple(walk.items), walk.next_start, walk.pages)
