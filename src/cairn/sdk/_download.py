"""Writing entries to a directory: verified, atomic per file, never outside the root.

A file already present with the right content is left alone (checked through the stat cache, so a
second download of an unchanged tree costs a stat per file). Every file written is verified
against its digest while it is written; each lands under a temporary name and is renamed into
place, so an interrupted download never leaves a half-written file under the entry's name. The
exception: a small file (one write) in a directory the download created itself goes straight in
under its name (created exclusively, removed again if the write fails), since the rename costs as
much as creating the file; only a process killed between the two system calls leaves it short,
and the next download or ``verify()`` checks its size and digest.
"""

from __future__ import annotations

import itertools
import os
import threading
import uuid
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from cairn.core import ManifestEntry, entry_path_problem, names_content
from cairn.errors import DigestMismatchError, ValidationError
from cairn.sdk import _progress
from cairn.sdk._contents import Contents
from cairn.sdk._entry import as_fs_path
from cairn.sdk._gc import without_gc
from cairn.sdk._references import fetch_reference, is_fetchable
from cairn.sdk._scan import merge_local
from cairn.sdk._session import Session
from cairn.sdk._settings import Settings
from cairn.sdk._statcache import (
    DigestReader,
    StatCache,
    is_racy,
    now_ns,
    stat_key,
)
from cairn.service import Service
from cairn.storage import SMALL_LIMIT

_THREADS = 8
_SMALL_WRITERS = 2
_RECORD_EVERY = 50_000  # downloaded files remembered in the stat cache this many at a time
# Files written from blobs read many at a time: small ones of a local store; from a server, those
# its batches carry (up to 8 MiB), read into memory at most this many bytes at a time.
_REMOTE_FILE_LIMIT = 8 << 20
# Entries a batch from a server: the first requests of a batch wait for the last of the one
# before (its files written), about 0.07 s each; a server's fetcher holds what it fetched ahead.
_REMOTE_BATCH = 8192
# Bytes of small files held at once (a batch read while the one before is written, if both fit):
# below what HttpService holds in memory (64 MiB).
_BATCH_BYTES = 48 << 20
_O_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


class RootGuard:
    """Makes sure nothing is written outside ``root``, even through symlinked directories.

    It also knows which directories it created itself (``root`` too, when it was empty): nothing
    else was in them, so a small file goes straight in under its name (``Downloader``), without
    looking for one already there."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        if os.path.exists(self.root) and not os.path.isdir(self.root):
            raise ValidationError(
                f"cannot download into {self.root}: it is a file, not a directory;"
                " give another root"
            )
        os.makedirs(self.root, exist_ok=True)
        self._real_root = os.path.realpath(self.root)
        self._checked: set[str] = set()
        self._new: set[str] = set()  # directories created by this download (empty then)
        self._dirs: dict[str, tuple[str, bool]] = {}  # an entry's directory -> (parent/, new)
        with os.scandir(self.root) as it:
            if next(it, None) is None:
                self._new.add(self.root)
        self._lock = threading.Lock()

    def target(self, entry_path: str) -> str:
        return self.place(entry_path)[0]

    def place(self, entry_path: str) -> tuple[str, bool]:
        """Where entry ``entry_path`` goes, and whether that is in a directory this download
        created (so nothing is there: no need to look)."""
        problem = entry_path_problem(entry_path)
        if problem is not None:
            raise ValidationError(f"refusing to write entry {entry_path[:200]!r}: {problem}")
        head, _, name = entry_path.rpartition("/")
        known = self._dirs.get(head)  # the parent, checked once per directory
        if known is None:
            parent = as_fs_path(self.root, head) if head else self.root
            with self._lock:
                if parent not in self._new and parent not in self._checked:
                    self._make_parent(parent, entry_path)
                known = self._dirs[head] = (parent + os.sep, parent in self._new)
        dest = known[0] + name
        if not known[1] and os.path.islink(dest):
            raise ValidationError(
                f"refusing to write entry {entry_path!r}: {dest} is a symbolic link"
            )
        return dest, known[1]

    def _make_parent(self, parent: str, entry_path: str) -> None:
        missing = []
        at = parent
        while at != self.root and at not in self._checked and not os.path.lexists(at):
            missing.append(at)
            at = os.path.dirname(at)
        try:
            os.makedirs(parent, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise ValidationError(
                f"cannot write entry {entry_path!r}: a file in {self.root} is in the way"
                f" of its directory {os.path.dirname(entry_path)!r}"
            ) from None
        real = os.path.realpath(parent)
        if real != self._real_root and not real.startswith(self._real_root + os.sep):
            raise ValidationError(
                f"refusing to write entry {entry_path!r}: {parent} leads outside {self.root}"
                " through a symbolic link"
            )
        self._checked.add(parent)
        self._new.update(missing)


class Downloader:
    def __init__(
        self,
        service: Service,
        root: str,
        *,
        stat_cache: StatCache | None,
        allow_missing_references: bool = False,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self._service = service
        self.guard = RootGuard(root)
        self._cache = stat_cache
        self._allow_missing = allow_missing_references
        self._on_progress = on_progress
        self._fresh: list[tuple[str, tuple[int, int, int, int, int], str]] = []
        self._lock = threading.Lock()
        self._digests = DigestReader(stat_cache)
        self._token = uuid.uuid4().hex[:8]
        self._serial = itertools.count()
        self._writes: list[Future[None]] = []  # the small files of one batch, being written
        self._writing_bytes = 0  # their size

    def _present(self, dest: str, entry: ManifestEntry) -> bool:
        try:
            st = os.stat(dest)
        except FileNotFoundError:
            return False
        if not os.path.isfile(dest):
            raise ValidationError(f"cannot write {dest}: a directory is in the way")
        if entry.size is not None and st.st_size != entry.size:
            return False
        if entry.ref is not None and not names_content(entry.digest):
            return False
        return self._digests.digest(dest) == entry.digest

    def fetch(self, entry: ManifestEntry) -> str:
        dest = self.guard.target(entry.path)
        if self._present(dest, entry):
            self._progress(entry)
            return dest
        # A short name beside it: the entry's name may already be as long as names can be.
        tmp = os.path.join(os.path.dirname(dest), f".cairn-{uuid.uuid4().hex[:12]}.partial")
        started = now_ns()
        try:
            if entry.ref is None:
                self._service.download_blob(entry.digest, tmp)
            elif not is_fetchable(entry.ref):
                return dest  # kept by URI only (W&B's behaviour for schemes it cannot fetch)
            elif not self._fetch_reference(entry, tmp):
                return dest
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        st = os.stat(dest)
        if entry.ref is None and not is_racy(st, started):
            with self._lock:
                self._fresh.append((dest, stat_key(st), entry.digest))
        self._progress(entry)
        return dest

    def _progress(self, entry: ManifestEntry) -> None:
        if self._on_progress is not None:
            self._on_progress(1, entry.size or 0)

    def _fetch_reference(self, entry: ManifestEntry, tmp: str) -> bool:
        """Fetch a reference into ``tmp``; False when it was skipped (allowed to be missing)."""
        try:
            fetch_reference(entry, tmp, self._cache)
        except (FileNotFoundError, DigestMismatchError) as exc:
            if self._allow_missing:
                warnings.warn(f"skipped {exc}", stacklevel=4)
                return False
            raise
        return True

    def _prefetch(self, entries: list[ManifestEntry]) -> None:
        """Let a remote service fetch, many per request, the blobs these entries will need
        (those whose file is not already there with the right size)."""
        wanted = []
        for e in entries:
            if e.ref is not None or entry_path_problem(e.path) is not None:
                continue
            try:
                if os.stat(as_fs_path(self.guard.root, e.path)).st_size == e.size:
                    continue
            except OSError:
                pass
            wanted.append(e.digest)
        if wanted:
            self._service.prefetch_blobs(wanted)

    def fetch_all(self, entries: Iterable[ManifestEntry]) -> None:
        """Write every entry, a batch at a time (memory does not grow with the entry count).

        The small files of a batch that are not already there (a local store's small blobs; a
        server's blobs up to 8 MiB) are read many at a time (one query; a few requests, the
        download cache filled on the side) and written straight into place by a few threads
        (writing small files is system calls, which release the GIL); the rest go one by one
        through ``fetch`` (from a server: fetched into the download cache first, many at a
        time, then copied out)."""
        local = self._service.is_local
        batch = 4 * _THREADS * 64 if local else _REMOTE_BATCH
        with ThreadPoolExecutor(_THREADS) as pool:
            pending: list[ManifestEntry] = []

            limit = SMALL_LIMIT if local else _REMOTE_FILE_LIMIT

            def run(chunk: list[ManifestEntry]) -> None:
                chunk = self._write_small_batch(chunk, pool, limit)
                if not local:
                    self._prefetch(chunk)
                for fut in [pool.submit(self.fetch, e) for e in chunk]:
                    fut.result()
                if self._cache is not None and len(self._fresh) >= _RECORD_EVERY:
                    self._record_fresh()

            for entry in entries:
                pending.append(entry)
                if len(pending) >= batch:
                    run(pending)
                    pending = []
            run(pending)
            self.wait_writes()
        self._record_fresh()
        self._digests.flush()

    def _record_fresh(self) -> None:
        with self._lock:
            fresh, self._fresh = self._fresh, []
        if self._cache is not None and fresh:
            self._cache.record(fresh)

    def _write_small_batch(
        self, chunk: list[ManifestEntry], pool: ThreadPoolExecutor, limit: int
    ) -> list[ManifestEntry]:
        """Write the stored entries of ``chunk`` under ``limit`` bytes whose file is absent, at
        most ``_BATCH_BYTES`` of them read at once; return the others."""
        rest: list[ManifestEntry] = []
        todo: list[tuple[ManifestEntry, str, bool]] = []
        size = 0
        for e in chunk:
            if e.ref is not None or e.size is None or e.size >= limit:
                rest.append(e)
                continue
            dest, new = self.guard.place(e.path)
            if not new and os.path.lexists(dest):
                rest.append(e)  # there already: checked (and maybe replaced) by fetch
                continue
            todo.append((e, dest, new))
            size += e.size
            if size >= _BATCH_BYTES and self._service.is_local:
                self._write_batch(todo, pool)
                todo, size = [], 0
        if todo and not self._service.is_local:
            self._write_arriving(todo)
        elif todo:
            self._write_batch(todo, pool)
        return rest

    def _write_arriving(self, todo: list[tuple[ManifestEntry, str, bool]]) -> None:
        """From a server: write each file as its blob arrives (verified; the service holds a
        bounded window of them and keeps fetching ahead while this thread writes)."""
        started = now_ns()
        fresh: list[tuple[str, tuple[int, int, int, int, int], str]] = []
        blobs = self._service.read_blobs([e.digest for e, _, _ in todo])
        for (entry, dest, new), (_, data) in zip(todo, blobs, strict=True):  # in that order
            self._write_one(entry, dest, new, data, started, fresh)
        with self._lock:
            self._fresh.extend(fresh)

    def _write_batch(
        self, todo: list[tuple[ManifestEntry, str, bool]], pool: ThreadPoolExecutor
    ) -> None:
        """Read the blobs of ``todo`` and hand them to writer threads; the previous batch is
        written while this one is read if both together stay within ``_BATCH_BYTES``."""
        size = sum(e.size or 0 for e, _, _ in todo)
        if self._writing_bytes + size > _BATCH_BYTES:
            self.wait_writes()
        blobs = dict(self._service.read_blobs([e.digest for e, _, _ in todo]))  # each verified
        # Files in directories this download made go in one after another: creating files in
        # one directory is serialised by the kernel, and two writers measured half as fast as
        # one. Replacing (a temporary name renamed into place) spreads over a couple of writers.
        new = [item for item in todo if item[2]]
        old = [item for item in todo if not item[2]]
        step = max(1, len(old) // _SMALL_WRITERS + 1)
        parts = [new] if new else []
        parts += [old[i : i + step] for i in range(0, len(old), step)]
        self.wait_writes()
        self._writes = [pool.submit(self._write_many, part, blobs) for part in parts]
        self._writing_bytes = size

    def wait_writes(self) -> None:
        """Wait for the batch being written (raising what its writers raised)."""
        writes, self._writes, self._writing_bytes = self._writes, [], 0
        for fut in writes:
            fut.result()

    def _write_many(
        self, items: list[tuple[ManifestEntry, str, bool]], blobs: dict[str, bytes]
    ) -> None:
        started = now_ns()
        fresh: list[tuple[str, tuple[int, int, int, int, int], str]] = []
        for entry, dest, new in items:
            self._write_one(entry, dest, new, blobs[entry.digest], started, fresh)
        with self._lock:
            self._fresh.extend(fresh)

    def _write_one(
        self,
        entry: ManifestEntry,
        dest: str,
        new: bool,
        data: bytes,
        started: int,
        fresh: list[tuple[str, tuple[int, int, int, int, int], str]],
    ) -> None:
        """Write one file from its verified bytes; remember its stat in ``fresh``."""
        # In a directory this download made, the file goes straight in under its name
        # (O_EXCL: created, never replaced; removed again if writing fails): a rename per
        # file costs as much as creating it. Elsewhere a temporary name, renamed into place.
        tmp = (
            dest
            if new
            else f"{os.path.dirname(dest)}{os.sep}.cairn-{self._token}-{next(self._serial)}.partial"
        )
        try:
            fd = os.open(tmp, _O_NEW, 0o666)
        except FileExistsError:
            if not new:
                raise
            self.fetch(entry)  # someone else put a file there meanwhile: checked, replaced
            return
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            st = os.fstat(fd)
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        if not new:
            os.replace(tmp, dest)
        if not is_racy(st, started):
            fresh.append((dest, stat_key(st), entry.digest))
        self._progress(entry)


# -- an artifact's files to a directory (Artifact.download, file, checkout, verify) ----------------


def default_root(settings: Settings, name: str) -> str:
    """``<artifact_dir>/<name>``: where an artifact is downloaded when no root is given."""
    if os.name == "nt":
        name = name.replace(":", "-")
    return os.path.join(settings.artifact_dir, name)


def _downloader(
    session: Session, root: str, allow_missing_references: bool, bar: Any
) -> Downloader:
    return Downloader(
        session.service,
        root,
        stat_cache=session.stat_cache,
        allow_missing_references=allow_missing_references,
        on_progress=bar.advance if bar is not None else None,
    )


@without_gc
def download_contents(
    session: Session,
    contents: Contents,
    root: str,
    *,
    path_prefix: str | None,
    allow_missing_references: bool,
) -> str:
    """Write the entries (those under ``path_prefix``, or all) under ``root``; returns ``root``."""
    prefix = (path_prefix or "").replace(os.sep, "/").lstrip("/")
    if prefix:
        entries: Iterable[ManifestEntry] = contents.iter_prefix(prefix)
        count, total = None, None
    else:
        entries = iter(contents)
        count, total = len(contents), contents.size
    with _progress.progress("downloading", count, total, settings=session.settings) as bar:
        _downloader(session, root, allow_missing_references, bar).fetch_all(entries)
    return root


def download_entry(session: Session, entry: ManifestEntry, root: str) -> str:
    """Write one entry under ``root``; returns its path."""
    with _progress.progress("downloading", 1, entry.size, settings=session.settings) as bar:
        return _downloader(session, root, False, bar).fetch(entry)


def remove_extra_files(contents: Contents, root: str) -> None:
    """Delete the files under ``root`` that are not entries (``checkout``)."""
    if os.path.isdir(root):
        # One walk beside one pass over the manifest, both in path order (never all of it).
        for _, full, entry in merge_local(root, iter(contents)):
            if entry is None and full is not None:
                os.remove(full)


@without_gc
def verify_contents(session: Session, contents: Contents, root: str, name: str) -> None:
    """Raise ``ValidationError`` naming the first file (in path order) under ``root`` that is
    extra, missing or different from the entries of artifact ``name``."""
    if not os.path.isdir(root):
        raise ValidationError(f"cannot verify {name}: {root} is not a directory")
    digests = DigestReader(session.stat_cache)
    try:
        for path, full, entry in merge_local(root, iter(contents)):
            if entry is None:
                raise ValidationError(f"Found file {full} which is not a member of artifact {name}")
            if full is None:
                raise ValidationError(f"File {path!r} of artifact {name} is missing from {root}")
            if entry.ref is not None and not names_content(entry.digest):
                continue
            if digests.digest(full) != entry.digest:
                raise ValidationError(f"Digest mismatch for file: {path!r} ({full})")
    finally:
        digests.flush()
