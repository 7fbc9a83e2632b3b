"""Scanning local directories: the walks behind ``add_dir``, ``checkout`` and ``verify``.

``add_directory`` walks a directory in entry-path order (one stat per file, no global sort), hands
the files to the stager (``_staging.Stager``: each file read and hashed once, its blob stored) and
puts their entries into the artifact's contents. A directory of more than ``STREAM_THRESHOLD``
files goes into manifest pages as it is walked instead, merged in path order with the artifact's
entries so far (a draft's too), so memory does not grow with the number of files. ``merge_local`` walks a directory beside a manifest (``checkout``,
``verify``). ``LocalPaths`` remembers which local file each entry came from (``local_path``).
"""

from __future__ import annotations

import os
import stat as _stat
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from cairn.core import (
    ManifestEntry,
    PageReader,
    TreeBuilder,
    entry_names_ok,
    entry_path_problem,
)
from cairn.errors import ValidationError
from cairn.sdk import _progress
from cairn.sdk._contents import Contents
from cairn.sdk._staging import POOL_FILES, Stager
from cairn.sdk._whole import DIR_FLAGS

if TYPE_CHECKING:
    from cairn.sdk._trees import TreeAdd

# add_directory of more files than this streams (see _add_stream)
STREAM_THRESHOLD = 50_000
STREAM_CHUNK = 5_000

LocalFileAt = tuple[str, str, os.stat_result, str]  # directory, name, stat, entry path
_LISTS_BY_FD = os.scandir in os.supports_fd


def listing(directory: str) -> Iterator[tuple[str, os.stat_result]]:
    """(name, stat) of each entry of ``directory`` (links followed; an entry gone meanwhile, or a
    dangling link, skipped), listed through the directory's descriptor where the system allows
    it: each ``stat`` is then ``fstatat(fd, name)``, a lookup of one name, not of the whole path
    again (about a tenth less CPU for a 20,000-file walk). The walks of ``add_dir`` and of a
    re-log (``_trees.scan_tree``) list directories through here."""
    fd = os.open(directory, DIR_FLAGS) if _LISTS_BY_FD else -1
    try:
        with os.scandir(fd if _LISTS_BY_FD else directory) as it:
            for entry in it:
                try:
                    yield entry.name, entry.stat()
                except FileNotFoundError:
                    continue
    finally:
        if fd >= 0:
            os.close(fd)


def add_directory(
    root: str,
    prefix: str,
    *,
    contents: Contents,
    local_paths: LocalPaths,
    stager: Stager,
    reader: PageReader,
    link: bool,
    merge: bool,
    may_stream: bool,
    tree: TreeAdd | None = None,
) -> None:
    """Add every regular file below ``root`` to ``contents`` as ``prefix + relative path``.

    ``merge`` replaces paths already there with other content (else ``ValidationError``);
    ``may_stream`` says a large directory may become the contents' base: a manifest of their
    entries and the directory's, written to the store through ``stager``, read by ``reader``.
    ``tree`` (a new artifact's only ``add_dir``) adds the directory again from its tree record
    when it has one (``_trees.py``: unchanged directories cost a stat), and fingerprints the
    walk otherwise.
    """
    if tree is not None:
        if tree.add_again(contents, STREAM_THRESHOLD, link):
            stager.add_tree(contents.root or "", root, prefix)
            local_paths.add_tree(prefix, root)
            tree.added(contents)
            return
        walk = tree.watch(walk_tree(root, prefix))
    else:
        walk = walk_tree(root, prefix)
    try:
        _add_walked(
            root, prefix, contents, local_paths, stager, reader, link, merge, may_stream, walk
        )
    except BaseException:
        stager.abandon_workers()  # the files they were reading ahead are not wanted
        raise
    if tree is not None:
        tree.added(contents)


def _add_walked(
    root: str,
    prefix: str,
    contents: Contents,
    local_paths: LocalPaths,
    stager: Stager,
    reader: PageReader,
    link: bool,
    merge: bool,
    may_stream: bool,
    walk: Iterator[list[LocalFileAt]],
) -> None:
    head: list[LocalFileAt] = []
    expected = False
    for group in walk:
        head.extend(group)
        if expected:
            stager.read_ahead([(d, n, st) for d, n, st, _ in group], link=link)
        elif len(head) >= POOL_FILES:
            # Enough new files for the staging workers: they start, and read, while the walk
            # goes on.
            stager.expect([(d, n, st) for d, n, st, _ in head], link=link)
            expected = True
        if may_stream and len(head) > STREAM_THRESHOLD:
            beside = _Beside(iter(contents), merge)
            _add_stream(
                root, prefix, contents, local_paths, stager, reader, link, head, walk, beside
            )
            return
    head.sort(key=lambda f: f[3])  # already sorted, unless the walk met a symlink cycle
    files = [(d, n, st) for d, n, st, _ in head]
    logical = [p for _, _, _, p in head]
    del head
    total = sum(st.st_size for _, _, st in files)
    with _progress.progress("hashing", len(files), total, settings=stager.settings) as bar:
        staged = stager.stage(files, link=link, on_progress=bar.advance)
    # The entries are made while the workers (if any) write their last blobs; then they end.
    entries = [
        ManifestEntry(path, sf.digest, sf.size) for path, sf in zip(logical, staged, strict=True)
    ]
    clash = contents.put_many(entries, overwrite=merge)
    if clash is not None:
        raise ValidationError(
            f"Cannot add the same path twice: {clash!r} is already in the artifact with other"
            " content; pass merge=True to replace changed files"
        )
    local_paths.add_batch(logical, files)
    stager.release_workers()


def _add_stream(
    root: str,
    prefix: str,
    contents: Contents,
    local_paths: LocalPaths,
    stager: Stager,
    reader: PageReader,
    link: bool,
    head: list[LocalFileAt],
    rest: Iterator[list[LocalFileAt]],
    beside: _Beside,
) -> None:
    """``add_directory`` of a large directory, as a stream: files are staged a chunk at a time
    and their entries, merged in path order with the contents' entries so far (``beside``), go
    straight into manifest pages written to the store, so memory does not grow with the number
    of files. The manifest becomes the contents' base (a local one); the commit names it. The
    steps run one after another per chunk (walk, stat-cache lookup, read and hash, store, page)."""
    builder = TreeBuilder(stager.stage_page)
    chunk = head
    with _progress.progress("hashing", None, None, settings=stager.settings) as bar:
        for group in rest:
            chunk.extend(group)
            stager.read_ahead([(d, n, st) for d, n, st, _ in group], link=link)
            if len(chunk) >= STREAM_CHUNK:
                _stage_chunk(stager, builder, beside, chunk, link, bar.advance)
                chunk = []
        if chunk:
            _stage_chunk(stager, builder, beside, chunk, link, bar.advance)
    builder.extend(beside.rest())
    ref = builder.finish()
    stager.flush()  # the pages are read back from the store from now on
    merged = len(contents) > 0
    contents.set_local_base(reader, ref.digest, ref.entry_count, ref.size)
    stager.add_tree(ref.digest, root, prefix)
    local_paths.add_tree(prefix, root, merged=merged)


class _Beside:
    """The contents' entries so far (in path order), put into a streamed directory's manifest
    beside the walked ones: a walked file replaces the entry at its path (with other content
    only when ``merge``), every other entry stays."""

    def __init__(self, entries: Iterator[ManifestEntry], merge: bool) -> None:
        self._entries = entries
        self._next = next(entries, None)
        self._merge = merge

    def around(self, walked: Iterable[ManifestEntry]) -> Iterator[ManifestEntry]:
        """``walked`` with the entries before each of them, in path order."""
        for e in walked:
            here = self._next
            while here is not None and here.path < e.path:
                yield here
                here = next(self._entries, None)
            if here is not None and here.path == e.path:
                if not self._merge and not here.same_content(e):
                    raise ValidationError(
                        f"Cannot add the same path twice: {e.path!r} is already in the artifact"
                        " with other content; pass merge=True to replace changed files"
                    )
                here = next(self._entries, None)
            self._next = here
            yield e

    def rest(self) -> Iterator[ManifestEntry]:
        """The entries after the last walked one."""
        here, self._next = self._next, None
        if here is not None:
            yield here
            yield from self._entries


def _stage_chunk(
    stager: Stager,
    builder: TreeBuilder,
    beside: _Beside,
    chunk: list[LocalFileAt],
    link: bool,
    on_progress: Callable[[int, int], None],
) -> None:
    staged = stager.stage(
        [(d, n, st) for d, n, st, _ in chunk],
        link=link,
        on_progress=on_progress,
        remember=False,
        more=True,
    )
    try:
        builder.extend(
            beside.around(
                ManifestEntry(f[3], sf.digest, sf.size) for f, sf in zip(chunk, staged, strict=True)
            )
        )
    except ValidationError:
        raise
    except ValueError:
        raise ValidationError(
            "cannot add a directory whose files are reached twice (a symbolic link loop or"
            " two links to one directory); remove the extra link"
        ) from None


def walk_tree(root: str, prefix: str) -> Iterator[list[LocalFileAt]]:
    """Every regular file below ``root``, in entry path order, a group of files at a time.

    Siblings are visited in the order of their names, a directory's name followed by "/": that
    is the order of the entry paths, so the walk needs no global sort and holds one directory's
    listing per level. Symbolic links are followed (as W&B does), each directory at most once.
    """
    seen: set[tuple[int, int]] = set()

    def walk(directory: str, rel: str) -> Iterator[list[LocalFileAt]]:
        st_dir = os.stat(directory)
        if (st_dir.st_dev, st_dir.st_ino) in seen:
            return
        seen.add((st_dir.st_dev, st_dir.st_ino))
        listed = []
        for name, st in listing(directory):
            if _stat.S_ISDIR(st.st_mode):
                listed.append((name + "/", st))
            elif _stat.S_ISREG(st.st_mode):
                listed.append((name, st))
        listed.sort(key=lambda x: x[0])
        # One test of the directory's names instead of one per file (the common case).
        checked = entry_names_ok(rel, [k for k, _ in listed if not k.endswith("/")])
        group: list[LocalFileAt] = []
        for key, st in listed:
            if key.endswith("/"):
                if group:
                    yield group
                    group = []
                yield from walk(os.path.join(directory, key[:-1]), rel + key)
                continue
            path = rel + key
            if not checked:
                problem = entry_path_problem(path)
                if problem is not None:
                    where = os.path.join(directory, key)
                    raise ValidationError(f"cannot add {where}: invalid entry path ({problem})")
            group.append((directory, key, st, path))
        if group:
            yield group

    yield from walk(root, prefix)


def local_files(root: str) -> Iterator[tuple[str, str]]:
    """(entry path, file path) of every file below ``root``, in entry path order (as ``os.walk``
    sees them: symbolic links to directories are not followed)."""

    def walk(directory: str, rel: str) -> Iterator[tuple[str, str]]:
        listed = []
        with os.scandir(directory) as it:
            for entry in it:
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    is_dir = False
                if not is_dir:
                    listed.append((entry.name, entry.path))
                elif not entry.is_symlink():
                    listed.append((entry.name + "/", entry.path))
        listed.sort()
        for key, path in listed:
            if key.endswith("/"):
                yield from walk(path, rel + key)
            else:
                yield rel + key, path

    yield from walk(root, "")


def merge_local(
    root: str, entries: Iterator[ManifestEntry]
) -> Iterator[tuple[str, str | None, ManifestEntry | None]]:
    """Local files and entries side by side in path order: (path, file or None, entry or None)."""
    local = local_files(root)
    here = next(local, None)
    entry = next(entries, None)
    while here is not None or entry is not None:
        if entry is None or (here is not None and here[0] < entry.path):
            assert here is not None
            yield here[0], here[1], None
            here = next(local, None)
        elif here is None or entry.path < here[0]:
            yield entry.path, None, entry
            entry = next(entries, None)
        else:
            yield entry.path, here[1], entry
            here = next(local, None)
            entry = next(entries, None)


class LocalPaths:
    """Entry path -> the local file it came from (``entry.local_path``), built only when read:
    joining 20,000 paths costs more than the rest of re-adding an unchanged directory."""

    def __init__(self) -> None:
        self._map: dict[str, str] = {}
        self._pending: list[tuple[list[str], list[tuple[str, str, os.stat_result]]]] = []
        # Streamed directories, newest first: (entry path prefix, local root, merged); paths
        # below the prefix map to files below the root, except those removed or added again
        # since (kept in _map). A directory merged with entries already there (a draft's) maps
        # only paths whose file is there: the others are the entries it kept.
        self._trees: list[tuple[str, str, bool]] = []
        self._dropped: set[str] = set()

    def add_tree(self, prefix: str, local_root: str, *, merged: bool = False) -> None:
        self._materialize()
        for path in [p for p in self._map if p.startswith(prefix)]:
            del self._map[path]  # below the directory now: its file, or an entry it kept
        self._dropped = {p for p in self._dropped if not p.startswith(prefix)}
        self._trees.insert(0, (prefix, local_root, merged))

    def add(self, path: str, local: str) -> None:
        self._materialize()
        self._map[path] = local

    def add_batch(self, logical: list[str], files: list[tuple[str, str, os.stat_result]]) -> None:
        self._pending.append((logical, files))

    def get(self, path: str) -> str | None:
        self._materialize()
        found = self._map.get(path)
        if found is not None or path in self._dropped:
            return found
        for prefix, local_root, merged in self._trees:
            if path.startswith(prefix):
                local = os.path.join(local_root, *path[len(prefix) :].split("/"))
                if not merged or os.path.isfile(local):
                    return local
        return None

    def pop(self, path: str) -> None:
        self._materialize()
        self._map.pop(path, None)
        if self._trees:
            self._dropped.add(path)

    def name_of(self, local: str) -> str | None:
        self._materialize()
        for path, source in self._map.items():
            if os.path.abspath(source) == local:
                return path
        for prefix, local_root, _ in self._trees:
            if local.startswith(local_root + os.sep) and os.path.isfile(local):
                path = prefix + os.path.relpath(local, local_root).replace(os.sep, "/")
                if path not in self._dropped:
                    return path
        return None

    def _materialize(self) -> None:
        for logical, files in self._pending:
            for path, (d, name, _) in zip(logical, files, strict=True):
                self._map[path] = os.path.join(d, name)
        self._pending.clear()
