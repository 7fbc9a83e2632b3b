"""Runs of a ``LocalService``: their records, history and summary, and their lineage (the
versions a run logged, used or wrote into)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cairn.core import (
    RunRecord,
    VersionRecord,
    check_history_rows,
    check_json_value,
    check_summary,
    validate_project,
)
from cairn.errors import ValidationError
from cairn.service._store import Store, require_project, require_run
from cairn.service._versions import delete_version_in

if TYPE_CHECKING:
    from cairn.catalog import Tx


class Runs:
    """The run methods of ``Service`` over one store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def start_run(self, run: RunRecord) -> RunRecord:
        validate_project(run.entity, "entity")
        validate_project(run.project)
        check_json_value(dict(run.config), "config")

        def fn(tx: Tx) -> RunRecord:
            pid = tx.projects.id_of(run.entity, run.project, create=True)
            assert pid is not None
            tx.runs.insert(pid, run)
            return tx.runs.record(pid, run.id)

        return self._store.catalog.write(fn)

    def finish_run(
        self, entity: str, project: str, run_id: str, state: str, config: Mapping[str, Any] | None
    ) -> None:
        if config is not None:
            check_json_value(dict(config), "config")

        def fn(tx: Tx) -> None:
            tx.runs.set_state(require_run(tx, entity, project, run_id), state, config)

        self._store.catalog.write(fn)

    def get_run(self, entity: str, project: str, run_id: str) -> RunRecord:
        def fn(tx: Tx) -> RunRecord:
            return tx.runs.record(require_project(tx, entity, project), run_id)

        return self._store.catalog.read(fn)

    def run_versions(
        self, entity: str, project: str, run_id: str, role: str
    ) -> list[VersionRecord]:
        def fn(tx: Tx) -> list[VersionRecord]:
            pk = require_run(tx, entity, project, run_id)
            return tx.versions.records(tx.lineage.versions_of(pk, role))

        return self._store.catalog.read(fn)

    def list_runs(self, entity: str, project: str) -> list[RunRecord]:
        """The runs of a project, oldest first (none if the project does not exist)."""

        def fn(tx: Tx) -> list[RunRecord]:
            pid = tx.projects.id_of(entity, project, create=False)
            return [] if pid is None else tx.runs.of_project(pid)

        return self._store.catalog.read(fn)

    def delete_run(
        self, entity: str, project: str, run_id: str, *, delete_artifacts: bool = False
    ) -> None:
        """Delete a run; with ``delete_artifacts`` the versions it logged are deleted too (their
        aliases with them), otherwise they stay, with no logging run."""

        def fn(tx: Tx) -> None:
            pk = require_run(tx, entity, project, run_id)
            if delete_artifacts:
                for vid in tx.lineage.versions_of(pk, "output"):
                    delete_version_in(tx, vid, delete_aliases=True)
            tx.runs.delete(pk)

        self._store.catalog.write(fn)

    def log_history(
        self, entity: str, project: str, run_id: str, rows: Sequence[str], summary: str | None
    ) -> None:
        checked = check_history_rows(rows)
        if summary is not None:
            check_summary(summary)

        def fn(tx: Tx) -> None:
            pk = require_run(tx, entity, project, run_id)
            tx.history.add(pk, checked)
            if summary is not None:
                tx.history.set_summary(pk, summary)

        self._store.catalog.write(fn)

    def run_history(
        self,
        entity: str,
        project: str,
        run_id: str,
        *,
        min_step: int | None = None,
        max_step: int | None = None,
        limit: int | None = None,
    ) -> list[str]:
        if limit is not None and limit < 0:
            raise ValidationError(f"limit must be 0 or more, not {limit}")

        def fn(tx: Tx) -> list[str]:
            pk = require_run(tx, entity, project, run_id)
            return tx.history.rows(pk, min_step, max_step, limit)

        return self._store.catalog.read(fn)

    def run_summary(self, entity: str, project: str, run_id: str) -> str:
        return self._store.catalog.read(
            lambda tx: tx.history.summary(require_run(tx, entity, project, run_id))
        )

    # -- lineage --

    def use_version(self, version_id: str, run: RunRecord) -> None:
        def fn(tx: Tx) -> None:
            pk = require_run(tx, run.entity, run.project, run.id)
            tx.lineage.add(version_id, pk, "input")

        self._store.catalog.write(fn)

    def version_runs(self, version_id: str, role: str) -> list[RunRecord]:
        return self._store.catalog.read(lambda tx: tx.lineage.runs_of(version_id, role))
