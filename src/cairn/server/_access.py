"""Which blobs a key may see: those the key itself uploaded, and those of projects it may read.

What a key sees follows its grants, never its user name: a key scoped to read one project does not
see what another key of the same user uploaded to another project. Uploads are recorded under
``uploader(key)`` (``key:<id>``, which no user name can be: ``:`` is not allowed in names).

A presence check answers only for these, so it never tells a key that content of a project it
cannot read exists; a blob outside them must be uploaded (which proves its content is known)
before a commit may refer to it. The object store keeps one copy whoever uploads it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from sqlalchemy import select, union

from cairn.catalog import Catalog, Tx
from cairn.catalog import _schema as s
from cairn.server._auth import Principal

_BATCH = 20_000


def uploader(who: Principal) -> str:
    """The owner recorded for the blobs and uploads this key sends."""
    return f"key:{who.key_id}"


def _readable_chunk(catalog: Catalog, who: Principal, chunk: list[str]) -> list[str]:
    bu, pb, p = s.blob_uploads.c, s.project_blobs.c, s.projects.c

    def fn(tx: Tx) -> list[str]:
        projects = select(p.id).where(who.project_filter(p.entity, p.name))
        mine = select(bu.digest).where(bu.user_name == uploader(who), tx.among(bu.digest, chunk))
        theirs = select(pb.digest).where(
            tx.among(pb.digest, chunk), pb.project_id.in_(projects.scalar_subquery())
        )
        return [str(r[0]) for r in tx.conn.execute(union(mine, theirs))]

    return catalog.read(fn)


def readable_blobs(catalog: Catalog, who: Principal, digests: Sequence[str]) -> set[str]:
    """Those of ``digests`` the key may read (and so need not upload)."""
    found: set[str] = set()
    wanted = list(dict.fromkeys(digests))
    batch = _BATCH if catalog.dialect == "postgresql" else 2000  # SQLite: 32,766 parameters
    for start in range(0, len(wanted), batch):
        chunk = wanted[start : start + batch]
        found.update(_readable_chunk(catalog, who, chunk))
    return found


def record_uploads(catalog: Catalog, who: Principal, digests: Sequence[str]) -> None:
    """The key uploaded these blobs and the server verified them."""
    if not digests:
        return
    now = time.time()
    rows = [
        {"user_name": uploader(who), "digest": d, "created_at": now} for d in dict.fromkeys(digests)
    ]

    catalog.write(lambda tx: tx.insert_ignore(s.blob_uploads, rows))
