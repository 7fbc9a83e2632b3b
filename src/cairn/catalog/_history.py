"""A run's history and summary (W&B's ``run.log`` / ``run.summary``), as JSON texts.

The values are checked and encoded before they get here (``cairn.core._history``); the catalog
keeps one row per step (table ``run_history``) and the summary in ``runs.summary``.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select, update

from cairn.catalog import _schema as s
from cairn.catalog._repository import Repository


class RunHistory(Repository):
    """The ``run_history`` table and the ``summary`` column of ``runs``."""

    def add(self, run_pk: int, rows: Sequence[tuple[int, str]]) -> None:
        """Store history rows ``(step, JSON text)``; a step logged again replaces its row."""
        if not rows:
            return
        steps = [step for step, _ in rows]
        h = s.run_history
        for start in range(0, len(steps), 500):
            chunk = steps[start : start + 500]
            self.conn.execute(delete(h).where(h.c.run_id == run_pk, h.c.step.in_(chunk)))
        last = dict(rows)
        self.conn.execute(
            h.insert(), [{"run_id": run_pk, "step": k, "row": v} for k, v in last.items()]
        )

    def set_summary(self, run_pk: int, summary: str) -> None:
        self.conn.execute(update(s.runs).where(s.runs.c.id == run_pk).values(summary=summary))

    def summary(self, run_pk: int) -> str:
        q = select(s.runs.c.summary).where(s.runs.c.id == run_pk)
        return self.conn.execute(q).scalar() or "{}"

    def rows(
        self,
        run_pk: int,
        min_step: int | None = None,
        max_step: int | None = None,
        limit: int | None = None,
    ) -> list[str]:
        """History rows (JSON texts) of steps ``min_step <= step < max_step``, by step."""
        h = s.run_history
        q = select(h.c.row).where(h.c.run_id == run_pk)
        if min_step is not None:
            q = q.where(h.c.step >= min_step)
        if max_step is not None:
            q = q.where(h.c.step < max_step)
        q = q.order_by(h.c.step)
        if limit is not None:
            q = q.limit(limit)
        return [r[0] for r in self.conn.execute(q)]
