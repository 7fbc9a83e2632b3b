"""The stat cache: ``(path, device, inode, size, mtime, ctime) -> digest``.

Re-adding a file that did not change then costs a ``stat``, not a read. A file whose timestamps are
too close to the moment it was read is not cached: a change within the file system's timestamp
granularity could otherwise go unseen (git calls this "racy clean").

Entries are kept one row per directory (a marshalled dict ``name -> (key, digest)``), so adding a
directory of 20,000 files costs one query per directory instead of one per file. Table ``trees``
holds the tree records of ``_trees.py`` (a directory added again at the cost of a stat).
"""

from __future__ import annotations

import marshal
import os
import sqlite3
import threading
import time
from collections.abc import Iterable

from cairn.errors import UnavailableError
from cairn.storage import hash_file, writer_turn

StatKey = tuple[int, int, int, int, int]  # device, inode, size, mtime_ns, ctime_ns
DirEntries = dict[str, tuple[StatKey, str]]
MEM_FILES = 25_000  # decoded rows kept in memory, counted in files
RACY_NS = 50_000_000  # a file changed within 50 ms of being read is not cached


def stat_key(st: os.stat_result) -> StatKey:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def is_racy(st: os.stat_result, read_started_ns: int) -> bool:
    return max(st.st_mtime_ns, st.st_ctime_ns) >= read_started_ns - RACY_NS


def now_ns() -> int:
    return time.time_ns()


def _decode(blob: bytes) -> DirEntries:
    try:
        raw = marshal.loads(blob)
    except (ValueError, EOFError, TypeError):
        return {}
    return raw if isinstance(raw, dict) else {}


class StatCache:
    """A best-effort cache in SQLite: any error makes it forget, never fail the caller."""

    busy_seconds = 5.0  # a write's wait for its turn, and SQLite's for its lock: then it forgets

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._broken = False
        # Decoded rows, kept in memory: a stale one can only cause a miss, because a hit needs
        # the file's current (device, inode, size, mtime, ctime) to match.
        self._mem: dict[str, DirEntries] = {}
        self._mem_files = 0

    def _db(self) -> sqlite3.Connection | None:
        if self._broken:
            return None
        if self._conn is None or self._pid != os.getpid():
            try:
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
                conn = sqlite3.connect(
                    self.path,
                    timeout=self.busy_seconds,
                    isolation_level=None,
                    check_same_thread=False,
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS dirs (path TEXT PRIMARY KEY, entries BLOB NOT NULL)"
                )
                # Tree records (sdk/_trees.py): store, local root and prefix -> record.
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS trees (key TEXT PRIMARY KEY, record BLOB NOT NULL)"
                )
            except (sqlite3.Error, OSError):
                self._broken = True
                return None
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def load_dir(self, directory: str) -> DirEntries:
        """Cached files directly in ``directory`` (an absolute path): name -> (key, digest)."""
        with self._lock:
            mem = self._mem.get(directory)
            if mem is not None:
                return mem
            db = self._db()
            if db is None:
                return {}
            try:
                row = db.execute("SELECT entries FROM dirs WHERE path = ?", (directory,)).fetchone()
            except sqlite3.Error:
                return {}
        entries = {} if row is None else _decode(row[0])
        self._remember(directory, entries)
        return entries

    def _remember(self, directory: str, entries: DirEntries) -> None:
        # Bounded by files, not directories: a million-file tree must not stay decoded here.
        if len(self._mem) > 20_000 or self._mem_files > MEM_FILES:
            self._mem.clear()
            self._mem_files = 0
        old = self._mem.get(directory)
        self._mem_files += len(entries) - (len(old) if old is not None else 0)
        self._mem[directory] = entries

    def load_dirs(self, directories: Iterable[str]) -> dict[str, DirEntries]:
        """``load_dir`` for many directories in one query per 500."""
        wanted = list(dict.fromkeys(directories))
        out: dict[str, DirEntries] = {}
        with self._lock:
            db = self._db()
            if db is None:
                return out
            try:
                out.update((d, self._mem[d]) for d in wanted if d in self._mem)
                wanted = [d for d in wanted if d not in out]
                for start in range(0, len(wanted), 500):
                    chunk = wanted[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    for path, blob in db.execute(
                        f"SELECT path, entries FROM dirs WHERE path IN ({marks})", chunk
                    ):
                        out[path] = _decode(blob)
            except sqlite3.Error:
                return {}
            for d in wanted:
                self._remember(d, out.setdefault(d, {}))
        return out

    def lookup(self, path: str) -> tuple[StatKey, str] | None:
        directory, name = os.path.split(path)
        return self.load_dir(directory).get(name)

    def record(self, rows: Iterable[tuple[str, StatKey, str]]) -> None:
        """Remember digests of files (absolute path, stat key, digest)."""
        self.record_files((*os.path.split(path), key, digest) for path, key, digest in rows)

    def record_files(self, rows: Iterable[tuple[str, str, StatKey, str]]) -> None:
        """Remember digests of files (absolute directory, name, stat key, digest)."""
        by_dir: dict[str, dict[str, tuple[StatKey, str]]] = {}
        for directory, name, key, digest in rows:
            by_dir.setdefault(directory, {})[name] = (key, digest)
        if not by_dir:
            return
        with self._lock:
            db = self._db()
            if db is None:
                return
            # Eight processes adding directories at once write here after each one: in turn
            # (``writer_turn``), not by SQLite's polling; a turn not had in time is skipped. A
            # failed write is rolled back before the turn goes to the next writer.
            try:
                with writer_turn(self.path, self.busy_seconds):
                    try:
                        self._record(db, by_dir)
                    finally:
                        if db.in_transaction:
                            db.execute("ROLLBACK")
            except (sqlite3.Error, UnavailableError):
                pass  # a cache: the write is forgotten

    def _record(
        self, db: sqlite3.Connection, by_dir: dict[str, dict[str, tuple[StatKey, str]]]
    ) -> None:
        db.execute("BEGIN IMMEDIATE")
        for directory, updates in by_dir.items():
            row = db.execute("SELECT entries FROM dirs WHERE path = ?", (directory,)).fetchone()
            merged = {} if row is None else _decode(row[0])
            merged.update(updates)
            self._remember(directory, merged)
            db.execute(
                "INSERT OR REPLACE INTO dirs (path, entries) VALUES (?, ?)",
                (directory, marshal.dumps(merged)),
            )
        db.execute("COMMIT")

    def load_tree(self, key: str) -> bytes | None:
        """The tree record saved under ``key`` (see ``_trees.py``), or None."""
        with self._lock:
            db = self._db()
            if db is None:
                return None
            try:
                row = db.execute("SELECT record FROM trees WHERE key = ?", (key,)).fetchone()
            except sqlite3.Error:
                return None
        return None if row is None else bytes(row[0])

    def save_tree(self, key: str, record: bytes) -> None:
        with self._lock:
            db = self._db()
            if db is None:
                return
            try:
                db.execute(
                    "INSERT OR REPLACE INTO trees (key, record) VALUES (?, ?)", (key, record)
                )
            except sqlite3.Error:
                pass  # best effort, as the rest of the cache

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None


def file_digest(path: str, cache: StatCache | None) -> str:
    """The digest of a local file, through the stat cache."""
    st = os.stat(path)
    if cache is not None:
        hit = cache.lookup(path)
        if hit is not None and hit[0] == stat_key(st):
            return hit[1]
    started = now_ns()
    digest, _ = hash_file(path)
    st_after = os.stat(path)
    if cache is not None and stat_key(st_after) == stat_key(st) and not is_racy(st, started):
        cache.record([(path, stat_key(st), digest)])
    return digest


class DigestReader:
    """``file_digest`` for many files: what it learns goes to the stat cache in batches (one
    transaction per ``every`` files, not one per file). Call ``flush`` at the end. Thread-safe."""

    def __init__(self, cache: StatCache | None, every: int = 20_000) -> None:
        self._cache = cache
        self._every = every
        self._fresh: list[tuple[str, StatKey, str]] = []
        self._lock = threading.Lock()

    def digest(self, path: str) -> str:
        st = os.stat(path)
        cache = self._cache
        if cache is not None:
            hit = cache.lookup(path)
            if hit is not None and hit[0] == stat_key(st):
                return hit[1]
        started = now_ns()
        digest, _ = hash_file(path)
        st_after = os.stat(path)
        if cache is not None and stat_key(st_after) == stat_key(st) and not is_racy(st, started):
            with self._lock:
                self._fresh.append((path, stat_key(st), digest))
                full = len(self._fresh) >= self._every
            if full:
                self.flush()
        return digest

    def flush(self) -> None:
        with self._lock:
            fresh, self._fresh = self._fresh, []
        if self._cache is not None and fresh:
            self._cache.record(fresh)
