"""Moving the blobs of a first-format local store (bytes in the ``blob`` table of
``small.sqlite``) into packs (``Packs.upgrade``): each transaction in the writers' turn."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from cairn.storage._local_packs import BATCH, rollback

if TYPE_CHECKING:
    from cairn.storage._local_packs import Packs

_MOVE = 32 << 20  # bytes of first-format blobs moved into packs per transaction


def upgrade(packs: Packs) -> int:
    """Move the blobs of a first-format store (bytes in the ``blob`` table of
    ``small.sqlite``) into packs, some MiB per transaction (a kill in between loses nothing:
    each blob is in one place or the other, both are read), then drop the table and give
    its pages back. Returns how many blobs were moved. Runs when the store is opened."""
    moved, dropped = 0, False
    with packs.lock:
        db = packs.db()
        while packs.legacy:
            try:
                with packs.turn():
                    n = _move_some(packs, db)
            except BaseException:
                rollback(db)
                raise
            moved += n
            dropped = dropped or (n == 0 and not packs.legacy)
        if dropped:
            try:
                db.execute("VACUUM")  # the dropped table's pages (and the new page size)
            except sqlite3.Error:
                pass  # busy: the pages stay free inside the file until the next gc
    return moved


def _move_some(packs: Packs, db: sqlite3.Connection) -> int:
    db.execute("BEGIN IMMEDIATE")
    exists = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'blob'"
    ).fetchone()
    if exists is None:
        db.execute("COMMIT")
        packs.legacy = False
        return 0
    batch: list[tuple[int, bytes, bytes, float]] = []
    taken = 0
    cur = db.execute("SELECT rowid, digest, data, stored_at FROM blob ORDER BY rowid")
    for rowid, raw, data, stored_at in cur:
        batch.append((int(rowid), bytes(raw), bytes(data), float(stored_at)))
        taken += len(data)
        if taken >= _MOVE:
            break
    cur.close()
    if not batch:
        db.execute("DROP TABLE blob")
        db.execute("COMMIT")
        packs.legacy = False
        return 0
    packed = {
        bytes(r[0])
        for start in range(0, len(batch), BATCH)
        for r in db.execute(
            "SELECT digest FROM packed WHERE digest IN"
            f" ({','.join('?' * len(batch[start : start + BATCH]))})",
            [b[1] for b in batch[start : start + BATCH]],
        )
    }
    packs.append(db, [(raw, data, at) for _, raw, data, at in batch if raw not in packed])
    db.executemany("DELETE FROM blob WHERE rowid = ?", [(b[0],) for b in batch])
    db.execute("COMMIT")
    return len(batch)
