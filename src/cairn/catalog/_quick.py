"""Read-only listings of an embedded catalog with the standard library's ``sqlite3``.

A cold ``cairn artifact ls`` spent most of its time importing SQLAlchemy (issue 13). This module
answers the same question with ``sqlite3`` alone, and only from a catalog whose schema is the
newest this cairn knows (its ``alembic_version`` is the newest migration): anything else (no
catalog yet, an older or a newer schema, a file SQLite cannot open) gets None, and the caller goes
through ``Catalog``, which creates, upgrades or refuses with the usual messages. The queries are
those of ``tx.collections.records``; ``tests/catalog/test_quick.py`` compares both on the same
stores.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence

from cairn.core import COMMITTED, LATEST, CollectionRecord

MIGRATIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations", "versions")
_BATCH = 500  # SQLite host parameters per statement, well under its limit
_ALIVE = "v.state = ? AND (v.expires_at IS NULL OR v.expires_at > ?)"  # _ttl.alive()


def newest_revision() -> str:
    """The newest migration's revision: migrations are files named ``NNNN_<topic>.py`` whose
    revision is their name (``tests/catalog/test_quick.py`` checks it is ``HEAD_REVISION``)."""
    names = [n[:-3] for n in os.listdir(MIGRATIONS) if n.endswith(".py") and n[:4].isdigit()]
    return max(names)


def open_current(path: str) -> sqlite3.Connection | None:
    """A connection to the SQLite catalog at ``path`` if its schema is current, else None."""
    if not os.path.isfile(path):
        return None
    try:
        conn = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
    except sqlite3.Error:
        return None
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        row = None
    if row is None or row[0] != newest_revision():
        conn.close()
        return None
    return conn


def quick_collections(
    path: str, entity: str, project: str, type_name: str | None = None
) -> list[CollectionRecord] | None:
    """``Service.list_collections`` read from the catalog file at ``path``, or None when the
    catalog is not there or not current (the caller then opens it the usual way)."""
    conn = open_current(path)
    if conn is None:
        return None
    try:
        conn.execute("BEGIN")  # one snapshot for every query
        try:
            return _collections(conn, entity, project, type_name)
        finally:
            conn.execute("COMMIT")
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def _chunks(ids: Sequence[int]) -> list[tuple[str, list[int]]]:
    return [
        (",".join("?" * len(ids[i : i + _BATCH])), list(ids[i : i + _BATCH]))
        for i in range(0, len(ids), _BATCH)
    ]


def _collections(
    conn: sqlite3.Connection, entity: str, project: str, type_name: str | None
) -> list[CollectionRecord]:
    row = conn.execute(
        "SELECT id FROM projects WHERE entity = ? AND name = ?", (entity, project)
    ).fetchone()
    if row is None:
        return []
    now = time.time()
    where, params = "c.project_id = ?", [row[0]]
    if type_name is not None:
        where, params = where + " AND c.type = ?", [*params, type_name]
    rows = conn.execute(
        "SELECT c.id, c.name, c.type, c.description, c.created_at, c.updated_at, n.n, n.latest"
        " FROM collections c LEFT JOIN (SELECT v.collection_id AS cid, count(*) AS n,"
        f" max(v.idx) AS latest FROM versions v WHERE {_ALIVE} GROUP BY v.collection_id) n"
        f" ON n.cid = c.id WHERE {where} ORDER BY c.type, c.name",
        [COMMITTED, now, *params],
    ).fetchall()
    ids = [int(r[0]) for r in rows]
    latest = _latest_versions(conn, {int(r[0]): r[7] for r in rows}, now)
    tags: dict[int, list[str]] = {}
    aliases: dict[int, list[str]] = {}
    for marks, chunk in _chunks(ids):
        for cid, tag in conn.execute(
            f"SELECT collection_id, tag FROM collection_tags WHERE collection_id IN ({marks})"
            " ORDER BY tag",
            chunk,
        ):
            tags.setdefault(int(cid), []).append(str(tag))
        for cid, alias in conn.execute(
            f"SELECT collection_id, alias FROM aliases WHERE collection_id IN ({marks})", chunk
        ):
            aliases.setdefault(int(cid), []).append(str(alias))
    for names in aliases.values():
        names.sort(key=lambda n: (n != LATEST, n))
    return [
        CollectionRecord(
            id=int(r[0]),
            entity=entity,
            project=project,
            name=r[1],
            type=r[2],
            description=r[3],
            version_count=int(r[6] or 0),
            latest_index=latest.get(int(r[0]), (None, None))[0],
            latest_size=latest.get(int(r[0]), (None, None))[1],
            created_at=r[4],
            updated_at=r[5],
            tags=tuple(tags.get(int(r[0]), ())),
            aliases=tuple(aliases.get(int(r[0]), ())),
        )
        for r in rows
    ]


def _latest_versions(
    conn: sqlite3.Connection, newest: dict[int, int | None], now: float
) -> dict[int, tuple[int | None, int | None]]:
    """As ``tx.collections.latest_versions``: the version with the ``latest`` alias, else the newest."""
    out: dict[int, tuple[int | None, int | None]] = {}
    for marks, chunk in _chunks(list(newest)):
        for cid, idx, size in conn.execute(
            "SELECT a.collection_id, v.idx, v.size FROM aliases a"
            f" JOIN versions v ON v.id = a.version_id WHERE a.alias = ? AND {_ALIVE}"
            f" AND a.collection_id IN ({marks})",
            [LATEST, COMMITTED, now, *chunk],
        ):
            out[int(cid)] = (int(idx), int(size))
    rest = [(cid, idx) for cid, idx in newest.items() if cid not in out and idx is not None]
    wanted = set(rest)
    for marks, chunk in _chunks([cid for cid, _ in rest]):
        for cid, idx, size in conn.execute(
            f"SELECT v.collection_id, v.idx, v.size FROM versions v WHERE {_ALIVE}"
            f" AND v.collection_id IN ({marks})",
            [COMMITTED, now, *chunk],
        ):
            if (int(cid), idx) in wanted:
                out[int(cid)] = (int(idx), int(size))
    return out
