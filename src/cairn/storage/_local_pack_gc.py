"""Removing small blobs from the packs (``Packs.delete``) and giving their bytes back
(``Packs.compact``): gc's side of ``_local_packs.py``, each write transaction in the writers'
turn as theirs."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cairn.storage._local_io import O_CLOEXEC, disk_full, pread_all, store_error
from cairn.storage._local_packs import BATCH, rollback

if TYPE_CHECKING:
    from cairn.storage._local_packs import Packs


def delete(packs: Packs, raws: Sequence[bytes]) -> int:
    """Remove the index rows of these blobs (their bytes stay in their packs until
    ``compact``); returns how many there were."""
    with packs.lock:
        db = packs.db()
        with packs.turn():
            return _delete(packs, db, raws)


def _delete(packs: Packs, db: sqlite3.Connection, raws: Sequence[bytes]) -> int:
    removed = 0
    try:
        db.execute("BEGIN IMMEDIATE")
        freed: dict[int, int] = {}
        for start in range(0, len(raws), BATCH):
            chunk = list(raws[start : start + BATCH])
            marks = ",".join("?" * len(chunk))
            for pack, size in db.execute(
                f"SELECT pack, size FROM packed WHERE digest IN ({marks})", chunk
            ):
                freed[int(pack)] = freed.get(int(pack), 0) + int(size)
            removed += db.execute(f"DELETE FROM packed WHERE digest IN ({marks})", chunk).rowcount
            if packs.legacy:
                removed += db.execute(f"DELETE FROM blob WHERE digest IN ({marks})", chunk).rowcount
        db.executemany(
            "UPDATE pack SET live = live - ? WHERE id = ?",
            [(n, pack) for pack, n in freed.items()],
        )
        db.execute("COMMIT")
        db.execute("PRAGMA incremental_vacuum")  # give the freed pages back
    except sqlite3.Error as exc:
        rollback(db)
        raise store_error(packs.root, "could not remove blobs", exc) from None
    return removed


def compact(packs: Packs) -> int:
    """Rewrite each pack whose live blobs use less than half of it: its live blobs are
    appended to another pack and the index points at them there (one transaction), then the
    old pack is removed. Pack files no index row refers to (a writer killed after creating
    one) are removed too. Returns the bytes given back. On a full disk the packs are left as
    they are (the rows are gone already; a later gc finishes)."""
    given_back = 0
    with packs.lock:
        db = packs.db()
        candidates = db.execute("SELECT id FROM pack WHERE live * 2 < size").fetchall()
        for (pack,) in candidates:
            try:
                with packs.turn():
                    given_back += _compact_one(packs, db, int(pack))
            except sqlite3.Error as exc:
                rollback(db)
                raise store_error(packs.root, "could not compact blob packs", exc) from None
            except OSError as exc:
                rollback(db)
                if disk_full(exc):
                    return given_back
                raise
        try:
            with packs.turn():
                given_back += _remove_orphan_packs(packs, db)
        except sqlite3.Error as exc:
            rollback(db)
            raise store_error(packs.root, "could not compact blob packs", exc) from None
    return given_back


def _compact_one(packs: Packs, db: sqlite3.Connection, pack: int) -> int:
    db.execute("BEGIN IMMEDIATE")
    row = db.execute("SELECT size, live FROM pack WHERE id = ?", (pack,)).fetchone()
    if row is None or int(row[1]) * 2 >= int(row[0]):
        db.execute("COMMIT")  # compacted by another process meanwhile
        return 0
    size = int(row[0])
    rows = db.execute(
        "SELECT digest, offset, size, stored_at FROM packed WHERE pack = ? ORDER BY offset",
        (pack,),
    ).fetchall()
    items: list[tuple[bytes, bytes, float]] = []
    if rows:
        fd = os.open(packs.pack_path(pack), os.O_RDONLY | O_CLOEXEC)
        try:
            for raw, offset, n, stored_at in rows:
                items.append((bytes(raw), pread_all(fd, int(n), int(offset)), stored_at))
        finally:
            os.close(fd)
        packs.append(db, items, avoid=pack)
    db.execute("DELETE FROM pack WHERE id = ?", (pack,))
    db.execute("COMMIT")
    try:
        os.unlink(packs.pack_path(pack))
    except FileNotFoundError:
        pass
    return size - sum(len(data) for _, data, _ in items)


def _remove_orphan_packs(packs: Packs, db: sqlite3.Connection) -> int:
    # Writers create pack files (an append, or the rename of a large batch's own file) only
    # while they hold the write lock: holding it, a pack file without a row is no one's.
    db.execute("BEGIN IMMEDIATE")
    try:
        known = {int(r[0]) for r in db.execute("SELECT id FROM pack")}
        given_back = 0
        entries = list(os.scandir(packs.packs_dir)) if os.path.isdir(packs.packs_dir) else []
        for entry in entries:
            stem, _, ext = entry.name.partition(".")
            if ext != "pack" or not stem.isdigit() or int(stem) in known:
                continue
            try:
                given_back += entry.stat().st_size
                os.unlink(entry.path)
            except FileNotFoundError:
                pass
    finally:
        db.execute("COMMIT")
    return given_back
