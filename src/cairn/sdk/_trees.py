"""Adding a directory again at the cost of a stat (issue 13, item 2).

When an artifact made of one ``add_dir`` is logged, its *tree record* remembers the manifest the
directory made (root digest, entries, bytes, pages) and, for each local directory in it, a
fingerprint of its files: their names and stat keys (device, inode, size, mtime, ctime), in name
order. Adding the same directory again into a new artifact walks and stats it and compares
fingerprints, directory by directory:

* an unchanged directory keeps its entries from that manifest, unread (neither the stat cache nor
  the files nor the pages are read);
* a changed, new or vanished one is listed again, its files are staged (through the stat cache, so
  only changed files are read) and compared with that manifest's entries of that directory.

The artifact's contents become that manifest (a local base, as for a streamed directory) plus the
changes, so the store rewrites only the pages the changes fall in; with nothing changed the commit
names a manifest a version already has, and finds that version. A directory's own mtime is not
used: rewriting a file in place does not change it.

A directory holding a *racy* file (changed within ``RACY_NS`` of being read, see ``_statcache``)
gets no fingerprint, so it is staged again next time, like git's racy-clean entries: a file
rewritten in place with the same size and mtime (and a ctime the clock could not tell apart)
cannot pass as unchanged. Records live in the stat cache's database, keyed by store, local root
and entry prefix; a record whose pages the store lacks is not used.
"""

from __future__ import annotations

import marshal
import os
import stat as _stat
from collections.abc import Iterator
from hashlib import sha256
from typing import NamedTuple

from cairn.core import Index, ManifestEntry, PageReader, entry_path_problem
from cairn.errors import ValidationError
from cairn.sdk._contents import Contents
from cairn.sdk._scan import LocalFileAt, listing
from cairn.sdk._staging import Stager
from cairn.sdk._statcache import StatCache
from cairn.service import Service

# Directory -> (its entry path prefix, fingerprint of its files, number of files).
Fingerprints = dict[str, tuple[str, bytes, int]]


class TreeRecord(NamedTuple):
    root: str  # the manifest of the tree's entries
    entry_count: int
    size: int
    pages: list[str]  # every page of that manifest (checked present before it is used)
    dirs: Fingerprints


FileKey = tuple[str, int, int, int, int, int]  # name, device, inode, size, mtime_ns, ctime_ns


def fingerprint(files: list[FileKey]) -> bytes:
    """Of a directory's files: (name, device, inode, size, mtime_ns, ctime_ns), in name order.

    The encoding is marshal's format 2, which has no references between objects (format 3 on
    marks objects by identity: the bytes would depend on more than the values), so equal keys
    give equal bytes and the bytes give the keys back; C does all of it (a text line per file
    cost a third more)."""
    return sha256(marshal.dumps(files, 2)).digest()


def scan_tree(root: str, prefix: str) -> Fingerprints:
    """The fingerprint of every directory below ``root`` that holds files, as ``_Scan`` makes
    them of ``walk_tree(root, prefix)`` (the same directories, links followed, each directory
    once and in the same order), and nothing else: no entry path, group or check per file.

    What adding a directory again from its record needs: a directory whose fingerprint is the
    record's has the names it had when it was logged (checked then); any other is listed and
    checked again (``TreeAdd._restage``)."""
    out: Fingerprints = {}
    top = os.stat(root)
    seen = {(top.st_dev, top.st_ino)}
    is_reg, is_dir = _stat.S_ISREG, _stat.S_ISDIR

    def walk(directory: str, rel: str) -> None:
        files: list[FileKey] = []
        subdirs: list[tuple[str, int, int]] = []
        for name, st in listing(directory):
            mode = st.st_mode
            if is_reg(mode):
                files.append(
                    (name, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
                )
            elif is_dir(mode):
                subdirs.append((name + "/", st.st_dev, st.st_ino))
        if files:
            files.sort()
            out[directory] = (rel, fingerprint(files), len(files))
        subdirs.sort()  # walk_tree's order: a directory's name followed by "/"
        for key, dev, ino in subdirs:
            if (dev, ino) not in seen:
                seen.add((dev, ino))
                walk(os.path.join(directory, key[:-1]), rel + key)

    walk(root, prefix)
    return out


class _Scan:
    """Fingerprints the directories of a walk as its groups go by (see ``watch``).

    A directory is complete when the walk leaves it, so only the directories on the current
    path hold their files' keys: memory does not grow with the size of the tree."""

    def __init__(self) -> None:
        self.dirs: Fingerprints = {}
        self._open: list[tuple[str, str, list[FileKey]]] = []

    def add(self, group: list[LocalFileAt]) -> None:
        d, name, _, path = group[0]
        self._leave(d)
        if not self._open or self._open[-1][0] != d:
            self._open.append((d, path[: len(path) - len(name)], []))
        self._open[-1][2].extend(
            [
                (n, s.st_dev, s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns)
                for _, n, s, _ in group
            ]
        )

    def _leave(self, d: str) -> None:
        """Close the open directories that are neither ``d`` nor above it."""
        while self._open and not (
            d == self._open[-1][0] or d.startswith(self._open[-1][0].rstrip(os.sep) + os.sep)
        ):
            self._close()

    def _close(self) -> None:
        directory, prefix, files = self._open.pop()
        self.dirs[directory] = (prefix, fingerprint(files), len(files))

    def finish(self) -> Fingerprints:
        while self._open:
            self._close()
        return self.dirs


def _list_files(directory: str) -> list[tuple[str, os.stat_result]]:
    """The regular files directly in ``directory`` (links followed, as the walk does), by name."""
    found = []
    try:
        with os.scandir(directory) as it:
            for entry in it:
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue
                if _stat.S_ISREG(st.st_mode):
                    found.append((entry.name, st))
    except (FileNotFoundError, NotADirectoryError):
        return []
    found.sort(key=lambda f: f[0])
    return found


def _direct_entries(reader: PageReader, root: str, prefix: str) -> Iterator[ManifestEntry]:
    """The entries directly under ``prefix`` (a directory's entry path, "" or ending in "/"):
    the subdirectories' entries are skipped by seeking past them, not read one by one."""
    start = prefix
    while True:
        for e in reader.iter_from(root, start):
            if not e.path.startswith(prefix):
                return
            rest = e.path[len(prefix) :]
            slash = rest.find("/")
            if slash < 0:
                yield e
                continue
            start = prefix + rest[:slash] + "0"  # "0" follows "/": past this subdirectory
            break
        else:
            return


def page_digests(reader: PageReader, root: str) -> list[str]:
    """Every page of the manifest at ``root``: reads its index pages only."""
    out = [root]
    stack = [root]
    while stack:
        node = reader.node(stack.pop())
        if isinstance(node, Index):
            out.extend(c.digest for c in node.children)
            stack.extend(c.digest for c in node.children if c.level > 0)
    return out


class TreeAdd:
    """One ``add_dir`` of a directory into a new artifact, seen through its tree record."""

    def __init__(
        self,
        service: Service,
        stager: Stager,
        cache: StatCache,
        reader: PageReader,
        root: str,
        prefix: str,
    ) -> None:
        self._service = service
        self._stager = stager
        self._cache = cache
        self._reader = reader
        self._root = root
        self._prefix = prefix
        self._key = f"{service.location}\n{root}\n{prefix}"
        self._scan = _Scan()
        self._dirs: Fingerprints | None = None
        self._generation = -1
        self._loaded: TreeRecord | None = None  # the record add_again used

    def watch(self, walk: Iterator[list[LocalFileAt]]) -> Iterator[list[LocalFileAt]]:
        """``walk``, fingerprinting each directory as it goes by."""
        for group in walk:
            if group:
                self._scan.add(group)
            yield group

    def _load(self) -> TreeRecord | None:
        data = self._cache.load_tree(self._key)
        if data is None:
            return None
        try:
            root, entries, size, pages, dirs = marshal.loads(data)
            return TreeRecord(root, entries, size, pages, dirs)
        except (ValueError, EOFError, TypeError):
            return None

    def add_again(self, contents: Contents, limit: int, link: bool) -> bool:
        """Make ``contents`` (empty) the directory, from its tree record: True if done, False
        (nothing done) when there is no usable record or more than ``limit`` files changed."""
        record = self._load()
        if record is None:
            return False
        self._loaded = record
        now = scan_tree(self._root, self._prefix)
        old = record.dirs
        changed = [d for d, fp in now.items() if old.get(d) != fp]
        gone = [d for d in old if d not in now]
        if sum(now[d][2] for d in changed) > limit:
            return False
        if self._service.missing_blobs(record.pages):
            return False  # its pages are gone (gc'd with the versions that had them)
        contents.set_local_base(self._reader, record.root, record.entry_count, record.size)
        for d in gone:
            for e in list(_direct_entries(self._reader, record.root, old[d][0])):
                contents.delete(e.path)
        for d in changed:
            now[d] = self._restage(contents, record.root, d, now[d][0], link)
        self._scan.dirs = now
        return True

    def _restage(
        self, contents: Contents, root: str, directory: str, prefix: str, link: bool
    ) -> tuple[str, bytes, int]:
        files = _list_files(directory)
        for name, _ in files:
            problem = entry_path_problem(prefix + name)
            if problem is not None:
                path = os.path.join(directory, name)
                raise ValidationError(f"cannot add {path}: invalid entry path ({problem})")
        # Remembered: these files are not in the record's manifest, where ``restore`` looks for
        # the others, and a blob the store lost before the commit is read again from its file.
        staged = self._stager.stage([(directory, n, st) for n, st in files], link=link)
        before = {e.path: e for e in _direct_entries(self._reader, root, prefix)}
        for (name, _), sf in zip(files, staged, strict=True):
            entry = ManifestEntry(prefix + name, sf.digest, sf.size)
            old = before.pop(entry.path, None)
            if old is None or not old.same_content(entry):
                contents.put(entry)
        for path in before:
            contents.delete(path)
        keys = [(n, s.st_dev, s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns) for n, s in files]
        return prefix, fingerprint(keys), len(files)

    def added(self, contents: Contents) -> None:
        """The directory is in ``contents`` now: what the record will say, if it is logged as is."""
        dirs = self._scan.finish()
        racy = self._stager.racy_dirs
        self._dirs = {d: fp for d, fp in dirs.items() if d not in racy}
        self._generation = contents.generation

    def logged(self, contents: Contents, root: str) -> None:
        """The artifact was committed with manifest ``root``: if it is exactly this directory
        (nothing added or removed since), record the tree."""
        if self._dirs is None or contents.generation != self._generation:
            return
        loaded = self._loaded
        if loaded is not None and loaded.root == root and loaded.dirs == self._dirs:
            return  # the record says so already: an unchanged re-log writes nothing here
        top = self._reader.root_ref(root)
        record = (root, top.entry_count, top.size, page_digests(self._reader, root), self._dirs)
        self._cache.save_tree(self._key, marshal.dumps(record))
