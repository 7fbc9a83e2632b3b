"""Time to live (W&B's ``Artifact.ttl``) and the rule every query follows: what is alive.

A version with a TTL expires at ``expires_at``. An expired version stays in the catalog until gc
marks it deleted, but from that moment nothing shows it: every query asks ``alive()``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, or_, select, update

from cairn.catalog import _schema as s
from cairn.catalog._repository import Repository, now
from cairn.core import COMMITTED
from cairn.errors import ArtifactNotFoundError


def alive(at: Any = None) -> Any:
    """A committed version whose TTL (if any) has not run out: what queries see. An expired
    version stays in the catalog until gc marks it deleted, but nothing shows it. ``at``: the
    time to compare with (a ``bindparam`` in a statement built once), else now."""
    v = s.versions.c
    return and_(
        v.state == COMMITTED,
        or_(v.expires_at.is_(None), v.expires_at > (now() if at is None else at)),
    )


class Expiry(Repository):
    """The ``ttl_seconds`` and ``expires_at`` columns of ``versions``."""

    def assign(
        self, version_id: str, ttl_seconds: float | None, start: float | None = None
    ) -> None:
        """Give a version a TTL from its commit time, or from ``start`` (None: no TTL)."""
        v = s.versions.c
        row = self.conn.execute(
            select(v.committed_at, v.created_at).where(v.id == version_id)
        ).first()
        if row is None:
            raise ArtifactNotFoundError(f"artifact version {version_id!r} not found")
        if start is None:
            start = row.committed_at or row.created_at
        expires = None if ttl_seconds is None else start + ttl_seconds
        self.conn.execute(
            update(s.versions)
            .where(v.id == version_id)
            .values(ttl_seconds=ttl_seconds, expires_at=expires, updated_at=now())
        )

    def expired(self) -> list[str]:
        """Committed versions whose TTL has run out (gc marks them deleted)."""
        v = s.versions.c
        q = select(v.id).where(v.state == COMMITTED, v.expires_at.is_not(None))
        return [str(r[0]) for r in self.conn.execute(q.where(v.expires_at <= now()))]
