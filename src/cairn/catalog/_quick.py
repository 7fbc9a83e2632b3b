"""Read-only listings of an embedded catalog with the standard library's ``sqlite3``.

A cold ``cairn artifact ls`` spent most of its time importing SQLAlchemy (issue 13). This module
answers the same question with ``sqlite3`` alone, and only from a catalog whose schema is the
newest this cairn knows (its ``alembic_version`` is the newest migration): anything else (no
catalog yet, an older or a newer schema, a file SQLite cannot open) gets None, and the caller goes
through ``Catalog``, which creates, upgrades or refuses with the usual messages. The queries are
those of ``tx.collections.records``, written once in ``_statements.py`` and run here as the SQL
text generated from them (``_quick_sql.py``); ``tests/catalog/test_quick.py`` compares both on
the same stores.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence

from cairn.catalog import _quick_sql as q
from cairn.catalog._rows import alias_lists, collection_record
from cairn.core import CollectionRecord

MIGRATIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations", "versions")
_BATCH = 500  # SQLite host parameters per statement, well under its limit


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


def _among(sql: str, ids: Sequence[int]) -> list[tuple[str, dict[str, object]]]:
    """``sql`` with its ``ids`` IN list filled in, in batches: (text, the ids' parameters)."""
    out = []
    for i in range(0, len(ids), _BATCH):
        chunk = ids[i : i + _BATCH]
        names = [f"ids_{n}" for n in range(len(chunk))]
        text = sql.replace("__[POSTCOMPILE_ids]", ", ".join(f":{n}" for n in names))
        out.append((text, dict[str, object](zip(names, chunk, strict=True))))
    return out


def _collections(
    conn: sqlite3.Connection, entity: str, project: str, type_name: str | None
) -> list[CollectionRecord]:
    row = conn.execute(q.PROJECT_ID, {"entity": entity, "name": project}).fetchone()
    if row is None:
        return []
    now = time.time()
    params: dict[str, object] = {**bound(q.COLLECTION_RECORDS_PARAMS), "now": now}
    params["project_id"] = row[0]
    if type_name is None:
        sql, columns = q.COLLECTION_RECORDS, q.COLLECTION_RECORDS_COLUMNS
    else:
        sql, columns = q.COLLECTION_RECORDS_OF_TYPE, q.COLLECTION_RECORDS_OF_TYPE_COLUMNS
        params = {**params, **bound(q.COLLECTION_RECORDS_OF_TYPE_PARAMS), "type": type_name}
    rows = [dict(zip(columns.split(","), r, strict=True)) for r in conn.execute(sql, params)]
    ids = [int(r["id"]) for r in rows]
    latest = _latest_versions(conn, {int(r["id"]): r["latest_idx"] for r in rows}, now)
    tags: dict[int, list[str]] = {}
    aliases: list[tuple[int, str]] = []
    for text, chunk in _among(q.COLLECTION_TAGS, ids):
        for cid, tag in conn.execute(text, chunk):
            tags.setdefault(int(cid), []).append(str(tag))
    for text, chunk in _among(q.COLLECTION_ALIASES, ids):
        aliases += conn.execute(text, chunk).fetchall()
    by_collection = alias_lists(aliases)
    return [collection_record(r, latest, tags, by_collection) for r in rows]


def _latest_versions(
    conn: sqlite3.Connection, newest: dict[int, int | None], now: float
) -> dict[int, tuple[int, int]]:
    """As ``tx.collections.latest_versions``: the version with the ``latest`` alias, else the newest."""
    out: dict[int, tuple[int, int]] = {}
    at = {**bound(q.LATEST_ALIASED_PARAMS), "now": now}
    for text, chunk in _among(q.LATEST_ALIASED, list(newest)):
        for cid, idx, size in conn.execute(text, {**at, **chunk}):
            out[int(cid)] = (int(idx), int(size))
    rest = [(cid, idx) for cid, idx in newest.items() if cid not in out and idx is not None]
    wanted = set(rest)
    at = {**bound(q.ALIVE_INDEXES_PARAMS), "now": now}
    for text, chunk in _among(q.ALIVE_INDEXES, [cid for cid, _ in rest]):
        for cid, idx, size in conn.execute(text, {**at, **chunk}):
            if (int(cid), idx) in wanted:
                out[int(cid)] = (int(idx), int(size))
    return out


def bound(params: str) -> dict[str, object]:
    """What a statement binds itself (``_statements.quick_sql``'s ``_PARAMS``)."""
    out: dict[str, object] = {}
    for pair in params.split(","):
        name, value = pair.split("=", 1)
        out[name] = value
    return out
