"""Which blobs a key may see: those its user uploaded, and those of projects it may read.

A presence check answers only for these, so it never tells a key that content of a project it
cannot read exists; a blob outside them must be uploaded (which proves its content is known)
before a commit may refer to it. The object store keeps one copy whoever uploads it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, union

from cairn.catalog import Catalog, Tx
from cairn.catalog import _schema as s
from cairn.server._auth import Principal

_BATCH = 2000


def _rows(catalog: Catalog, q: Any) -> list[Any]:
    return catalog.read(lambda tx: list(tx.conn.execute(q)))


def readable_blobs(catalog: Catalog, who: Principal, digests: Sequence[str]) -> set[str]:
    """Those of ``digests`` the key may read (and so need not upload)."""
    bu, pb, p = s.blob_uploads.c, s.project_blobs.c, s.projects.c
    found: set[str] = set()
    wanted = list(dict.fromkeys(digests))
    for start in range(0, len(wanted), _BATCH):
        chunk = wanted[start : start + _BATCH]
        mine = select(bu.digest).where(bu.user_name == who.user, bu.digest.in_(chunk))
        theirs = (
            select(pb.digest)
            .join(s.projects, p.id == pb.project_id)
            .where(pb.digest.in_(chunk), who.project_filter(p.entity, p.name))
        )
        q = union(mine, theirs)
        found.update(str(r[0]) for r in _rows(catalog, q))
    return found


def record_uploads(catalog: Catalog, user: str, digests: Sequence[str]) -> None:
    """The user uploaded these blobs and the server verified them."""
    if not digests:
        return
    now = time.time()
    rows = [{"user_name": user, "digest": d, "created_at": now} for d in dict.fromkeys(digests)]

    def fn(tx: Tx) -> None:
        for start in range(0, len(rows), _BATCH):
            tx.conn.execute(
                tx._insert(s.blob_uploads).on_conflict_do_nothing(), rows[start : start + _BATCH]
            )

    catalog.write(fn)
