"""The stat cache: ``(path, device, inode, size, mtime, ctime) -> digest``.

Re-adding a file that did not change then costs a ``stat``, not a read. A file whose timestamps are
too close to the moment it was read is not cached: a change within the file system's timestamp
granularity could otherwise go unseen (git calls this "racy clean").
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable

from cairn.core import digest_from_hasher, new_hasher

StatKey = tuple[int, int, int, int, int]  # device, inode, size, mtime_ns, ctime_ns
RACY_NS = 50_000_000  # a file changed within 50 ms of being read is not cached
CHUNK = 1 << 20


def stat_key(st: os.stat_result) -> StatKey:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def is_racy(st: os.stat_result, read_started_ns: int) -> bool:
    return max(st.st_mtime_ns, st.st_ctime_ns) >= read_started_ns - RACY_NS


class StatCache:
    """A best-effort cache in SQLite: any error makes it forget, never fail the caller."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._broken = False

    def _db(self) -> sqlite3.Connection | None:
        if self._broken:
            return None
        if self._conn is None or self._pid != os.getpid():
            try:
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
                conn = sqlite3.connect(
                    self.path, timeout=5, isolation_level=None, check_same_thread=False
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS stat (path TEXT PRIMARY KEY, dev INTEGER, ino INTEGER,"
                    " size INTEGER, mtime INTEGER, ctime INTEGER, digest TEXT) WITHOUT ROWID"
                )
            except (sqlite3.Error, OSError):
                self._broken = True
                return None
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def lookup_tree(self, directory: str) -> dict[str, tuple[StatKey, str]]:
        """Every cached file below ``directory`` (an absolute path), in one query."""
        prefix = directory.rstrip(os.sep) + os.sep
        with self._lock:
            db = self._db()
            if db is None:
                return {}
            try:
                rows = db.execute(
                    "SELECT path, dev, ino, size, mtime, ctime, digest FROM stat"
                    " WHERE path >= ? AND path < ?",
                    (prefix, prefix[:-1] + chr(ord(os.sep) + 1)),
                ).fetchall()
            except sqlite3.Error:
                return {}
        return {r[0]: ((r[1], r[2], r[3], r[4], r[5]), r[6]) for r in rows}

    def lookup(self, path: str) -> tuple[StatKey, str] | None:
        with self._lock:
            db = self._db()
            if db is None:
                return None
            try:
                r = db.execute(
                    "SELECT dev, ino, size, mtime, ctime, digest FROM stat WHERE path = ?", (path,)
                ).fetchone()
            except sqlite3.Error:
                return None
        return None if r is None else ((r[0], r[1], r[2], r[3], r[4]), r[5])

    def record(self, rows: Iterable[tuple[str, StatKey, str]]) -> None:
        batch = [(p, *k, d) for p, k, d in rows]
        if not batch:
            return
        with self._lock:
            db = self._db()
            if db is None:
                return
            try:
                db.execute("BEGIN IMMEDIATE")
                db.executemany("INSERT OR REPLACE INTO stat VALUES (?, ?, ?, ?, ?, ?, ?)", batch)
                db.execute("COMMIT")
            except sqlite3.Error:
                if db.in_transaction:
                    db.execute("ROLLBACK")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None


def now_ns() -> int:
    return time.time_ns()


def hash_file(path: str) -> tuple[str, int]:
    """The digest and size of a local file, read in chunks."""
    hasher = new_hasher()
    size = 0
    with open(path, "rb") as f:
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        while n := f.readinto(buf):
            hasher.update(view[:n])
            size += n
    return digest_from_hasher(hasher), size


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
