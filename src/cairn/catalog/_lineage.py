"""Lineage: which runs logged (``output``), used (``input``) or wrote into (``writer``, a
distributed version's writers) which versions (table ``version_runs``)."""

from __future__ import annotations

from sqlalchemy import or_, select

from cairn.catalog import _schema as s
from cairn.catalog import _statements as st
from cairn.catalog._repository import Repository, now
from cairn.catalog._ttl import alive
from cairn.core import COMMITTED, DELETED, RunRecord


class Lineage(Repository):
    """The ``version_runs`` table: (version, run, role)."""

    def add(self, version_id: str, run_pk: int, role: str) -> None:
        row = {"version_id": version_id, "run_id": run_pk, "role": role, "created_at": now()}
        self.conn.execute(st.lineage_add(self.tx.dialect), row)

    def copy(self, src_version: str, dst_version: str, role: str) -> None:
        """Give ``dst_version`` the runs ``src_version`` has in ``role``."""
        vr = s.version_runs.c
        q = select(vr.run_id).where(vr.version_id == src_version, vr.role == role)
        for (run_pk,) in list(self.conn.execute(q)):
            self.add(dst_version, int(run_pk), role)

    def runs_of(self, version_id: str, role: str) -> list[RunRecord]:
        vr = s.version_runs.c
        sub = select(vr.run_id).where(vr.version_id == version_id, vr.role == role)
        return self.tx.runs.records(s.runs.c.id.in_(sub))

    def versions_of(self, run_pk: int, role: str) -> list[str]:
        """Versions (pending or alive) the run has in ``role``, in the order it got them."""
        vr, v = s.version_runs.c, s.versions.c
        q = (
            select(vr.version_id)
            .join(s.versions, v.id == vr.version_id)
            .where(vr.run_id == run_pk, vr.role == role, v.state != DELETED)
            .where(or_(v.state != COMMITTED, alive()))
            .order_by(vr.created_at)
        )
        return [str(r[0]) for r in self.conn.execute(q)]
