"""Runs: W&B's runs of a project, resumed by id, and forgotten with their lineage."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, select, update

from cairn.catalog import _schema as s
from cairn.catalog import _statements as st
from cairn.catalog._repository import Repository, now, to_json
from cairn.catalog._rows import run_record, run_row, run_state
from cairn.core import RunRecord
from cairn.errors import RunNotFoundError


class Runs(Repository):
    """The ``runs`` table (a run's history rows: ``RunHistory``)."""

    def insert(self, project_id: int, run: RunRecord) -> int:
        existing = self.pk(project_id, run.id)
        if existing is not None:
            # Resumed (W&B's init(id=..., resume=...)): the config given now is merged into the
            # stored one, not dropped.
            values: dict[str, Any] = {"state": run.state, "finished_at": None}
            if run.config:
                stored = self.conn.execute(
                    select(s.runs.c.config).where(s.runs.c.id == existing)
                ).scalar_one()
                values["config"] = to_json({**json.loads(stored), **dict(run.config)})
            self.conn.execute(update(s.runs).where(s.runs.c.id == existing).values(**values))
            return existing
        return self._insert(project_id, run, finished_at=None)

    def insert_imported(self, project_id: int, run: RunRecord) -> int:
        """Insert a run copied from another store as it is, unless the id exists (then nothing)."""
        existing = self.pk(project_id, run.id)
        if existing is not None:
            return existing
        return self._insert(project_id, run, finished_at=run.finished_at)

    def _insert(self, project_id: int, run: RunRecord, *, finished_at: float | None) -> int:
        res = self.conn.execute(
            st.RUN_INSERT, run_row(project_id, run, at=now(), finished_at=finished_at)
        )
        pk = res.inserted_primary_key
        assert pk is not None
        return int(pk[0])

    def pk(self, project_id: int, run_id: str) -> int | None:
        pk = self.conn.execute(st.RUN_PK, {"project_id": project_id, "run_id": run_id}).scalar()
        return None if pk is None else int(pk)

    def require_pk(self, project_id: int, run_id: str) -> int:
        pk = self.pk(project_id, run_id)
        if pk is None:
            raise RunNotFoundError(f"run {run_id!r} does not exist in this project")
        return pk

    def set_state(self, run_pk: int, state: str, config: Mapping[str, Any] | None) -> None:
        self.conn.execute(st.RUN_STATE, run_state(run_pk, state, config, at=now()))

    def records(self, where: Any) -> list[RunRecord]:
        return [run_record(r._mapping) for r in self.conn.execute(st.run_records(where))]

    def of_project(self, project_id: int) -> list[RunRecord]:
        """The project's runs, oldest first."""
        return self.records(s.runs.c.project_id == project_id)

    def record(self, project_id: int, run_id: str) -> RunRecord:
        key = {"project_id": project_id, "run_id": run_id}
        row = self.conn.execute(st.RUN_RECORD, key).first()
        if row is None:
            raise RunNotFoundError(f"run {run_id!r} not found")
        return run_record(row._mapping)

    def delete(self, run_pk: int) -> None:
        """Forget a run: its lineage rows go; versions it logged stay, with no creator."""
        self.conn.execute(delete(s.version_runs).where(s.version_runs.c.run_id == run_pk))
        self.conn.execute(
            update(s.versions).where(s.versions.c.created_by == run_pk).values(created_by=None)
        )
        self.conn.execute(
            update(s.staged_entries).where(s.staged_entries.c.run_id == run_pk).values(run_id=None)
        )
        self.conn.execute(delete(s.run_history).where(s.run_history.c.run_id == run_pk))
        self.conn.execute(delete(s.runs).where(s.runs.c.id == run_pk))
