"""W&B's disabled mode (``init(mode="disabled")``): a run that records nothing."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any, cast

from cairn.core import FAILED, FINISHED, RUNNING, RunRecord, parse_artifact_path
from cairn.errors import UsageError
from cairn.sdk._artifact import Artifact
from cairn.sdk._history import Metric, Summary
from cairn.sdk._run import Run, deactivate, new_run_id
from cairn.sdk._run_artifacts import name_from_path
from cairn.sdk._session import Session
from cairn.sdk._settings import Settings


def disabled_record(
    project: str | None,
    entity: str | None,
    group: str | None,
    job_type: str | None,
    name: str | None,
    config: Any,
    run_id: str | None,
    env: Settings,
) -> RunRecord:
    run_id = run_id or env.run_id or new_run_id()
    job_type = job_type or env.job_type
    return RunRecord(
        id=run_id,
        entity=entity or env.entity or "disabled",
        project=project or env.project,
        name=name or env.run_name or f"{job_type or 'run'}-{run_id}",
        group=group or env.run_group,
        job_type=job_type,
        config=dict(config) if config is not None else {},
        state=RUNNING,
        created_at=time.time(),
    )


class DisabledRun(Run):
    """W&B's disabled mode: a run that records nothing and never touches a store. Its config
    works; logging returns the artifact unlogged; using an artifact returns an unlogged one of
    that name; ``finish`` does nothing but end it."""

    def __init__(self, record: RunRecord, settings: Settings, dir: str | None) -> None:
        super().__init__(cast(Session, None), record, settings, dir)
        self._disabled_summary: Summary | None = None

    @property
    def disabled(self) -> bool:
        return True

    def finish(self, exit_code: int | None = None, quiet: bool | None = None) -> None:
        if self._finished:
            return
        self._finished = True
        state = FINISHED if not exit_code else FAILED
        self._record = dataclasses.replace(self._record, state=state, config=dict(self._config))
        deactivate(self)

    def _noop_artifact(
        self,
        artifact_or_path: Artifact | str | os.PathLike[str],
        name: str | None,
        type: str | None,
    ) -> Artifact:
        if isinstance(artifact_or_path, Artifact):
            return artifact_or_path
        path = os.fspath(artifact_or_path)
        return Artifact(name or name_from_path(self.id, path), type or "unspecified")

    def log_artifact(
        self,
        artifact_or_path: Artifact | str | os.PathLike[str],
        name: str | None = None,
        type: str | None = None,
        aliases: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
    ) -> Artifact:
        self._check_active("log_artifact")
        return self._noop_artifact(artifact_or_path, name, type)

    def use_artifact(
        self,
        artifact_or_name: Artifact | str,
        type: str | None = None,
        aliases: Sequence[str] | None = None,
        use_as: str | None = None,
    ) -> Artifact:
        self._check_active("use_artifact")
        if isinstance(artifact_or_name, Artifact):
            return artifact_or_name
        ref = parse_artifact_path(artifact_or_name)
        return Artifact(ref.name, type or "unspecified")

    def upsert_artifact(
        self,
        artifact_or_path: Artifact | str | os.PathLike[str],
        name: str | None = None,
        type: str | None = None,
        aliases: Sequence[str] | None = None,
        distributed_id: str | None = None,
    ) -> Artifact:
        self._check_active("upsert_artifact")
        return self._noop_artifact(artifact_or_path, name, type)

    def finish_artifact(
        self,
        artifact_or_path: Artifact | str | os.PathLike[str],
        name: str | None = None,
        type: str | None = None,
        aliases: Sequence[str] | None = None,
        distributed_id: str | None = None,
    ) -> Artifact:
        self._check_active("finish_artifact")
        return self._noop_artifact(artifact_or_path, name, type)

    def log_model(
        self,
        path: str | os.PathLike[str],
        name: str | None = None,
        aliases: Sequence[str] | None = None,
    ) -> Artifact:
        self._check_active("log_model")
        return self._noop_artifact(path, name, "model")

    def link_artifact(
        self, artifact: Artifact, target_path: str, aliases: Sequence[str] | None = None
    ) -> Artifact:
        self._check_active("link_artifact")
        return artifact

    def link_model(
        self,
        path: str | os.PathLike[str],
        registered_model_name: str,
        name: str | None = None,
        aliases: Sequence[str] | None = None,
    ) -> Artifact:
        self._check_active("link_model")
        return self._noop_artifact(path, name, "model")

    def use_model(self, name: str) -> str:
        raise UsageError("use_model() needs a store, and this run is disabled (mode='disabled')")

    @property
    def summary(self) -> Summary:
        with self._writer_lock:
            if self._disabled_summary is None:
                self._disabled_summary = Summary()
            return self._disabled_summary

    @property
    def step(self) -> int:
        return 0

    def define_metric(
        self,
        name: str,
        step_metric: str | None = None,
        step_sync: bool | None = None,
        hidden: bool | None = None,
        summary: str | None = None,
        goal: str | None = None,
        overwrite: bool | None = None,
    ) -> Metric:
        self._check_active("define_metric")
        return Metric(name, step_metric, step_sync, hidden, summary, goal)

    def log(
        self,
        data: Mapping[str, Any],
        step: int | None = None,
        commit: bool | None = None,
        sync: bool | None = None,
    ) -> None:
        self._check_active("log")

    def logged_artifacts(self) -> list[Artifact]:
        return []

    def used_artifacts(self) -> list[Artifact]:
        return []

    def __repr__(self) -> str:
        return f"<Run {self.path} (disabled)>"
