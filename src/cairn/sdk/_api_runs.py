"""Runs as the query API sees them (W&B's ``wandb.apis.public.Run`` and ``Runs``): record,
summary, history pages, lineage."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from cairn.core import (
    RunRecord,
    iso_time,
)
from cairn.errors import ValidationError
from cairn.sdk._artifact import Artifact
from cairn.sdk._session import Session

if TYPE_CHECKING:
    from cairn.sdk._history import Summary


_HISTORY_PAGE = 10_000  # history rows per request when a whole history is read


class ApiRun:
    """A run as the query API sees it (W&B's ``wandb.apis.public.Run``)."""

    def __init__(self, session: Session, record: RunRecord) -> None:
        self._session = session
        self._service = session.service
        self._record = record
        self._summary: Summary | None = None

    id = property(lambda self: self._record.id)
    name = property(lambda self: self._record.name)
    entity = property(lambda self: self._record.entity)
    project = property(lambda self: self._record.project)
    group = property(lambda self: self._record.group)
    job_type = property(lambda self: self._record.job_type)
    state = property(lambda self: self._record.state)
    path = property(lambda self: self._record.path.split("/"))

    @property
    def config(self) -> dict[str, Any]:
        return dict(self._record.config)

    @property
    def created_at(self) -> str | None:
        return iso_time(self._record.created_at)

    def logged_artifacts(self) -> list[Artifact]:
        r = self._record
        records = self._service.run_versions(r.entity, r.project, r.id, "output")
        return [Artifact._from_record(self._session, v) for v in records]

    def used_artifacts(self) -> list[Artifact]:
        r = self._record
        records = self._service.run_versions(r.entity, r.project, r.id, "input")
        return [Artifact._from_record(self._session, v) for v in records]

    @property
    def display_name(self) -> str:
        return str(self._record.name)

    @property
    def tags(self) -> list[str]:
        return []

    # -- history and summary (W&B's public Run.summary, history(), scan_history()) --

    @property
    def summary(self) -> Summary:
        """The run's summary (a dict-like object): each logged key's last value and what was
        set. Setting a key (``run.summary["k"] = v``, ``run.summary.update({...})``) saves it."""
        if self._summary is None:
            from cairn.sdk._history import Summary, dumps, loads

            r = self._record
            text = self._service.run_summary(r.entity, r.project, r.id)

            def save() -> None:
                assert self._summary is not None
                data = dumps(self._summary._as_dict())
                self._service.log_history(r.entity, r.project, r.id, [], data)

            self._summary = Summary(loads(text), save)
        return self._summary

    @property
    def summary_metrics(self) -> dict[str, Any]:
        """The summary as a plain dict (W&B's ``Run.summary_metrics``)."""
        return dict(self.summary)

    def update(self) -> None:
        """Save the summary (W&B's ``Run.update``; setting summary keys saves them already)."""
        if self._summary is not None:
            from cairn.sdk._history import dumps

            r = self._record
            data = dumps(self._summary._as_dict())
            self._service.log_history(r.entity, r.project, r.id, [], data)

    @property
    def lastHistoryStep(self) -> int:
        """The last logged step, or -1."""
        rows = self._rows(None, None)
        return int(rows[-1]["_step"]) if rows else -1

    def _rows(self, min_step: int | None, max_step: int | None) -> list[dict[str, Any]]:
        """Every row, read in pages (a server answers each page in one bounded response)."""
        return list(self._pages(min_step, max_step, _HISTORY_PAGE))

    def _pages(
        self, min_step: int | None, max_step: int | None, page_size: int
    ) -> Iterator[dict[str, Any]]:
        from cairn.sdk._history import loads

        r = self._record
        start = min_step
        while True:
            texts = self._service.run_history(
                r.entity, r.project, r.id, min_step=start, max_step=max_step, limit=page_size
            )
            rows = [loads(t) for t in texts]
            yield from rows
            if len(rows) < page_size:
                return
            start = int(rows[-1]["_step"]) + 1

    def history(
        self,
        samples: int = 500,
        keys: Sequence[str] | None = None,
        x_axis: str = "_step",
        pandas: bool = True,
        stream: str = "default",
    ) -> Any:
        """Logged rows, at most ``samples`` of them spread over the run (W&B's
        ``Run.history``): a pandas DataFrame, or with ``pandas=False`` a list of dicts. With
        ``keys``, only rows holding every key, with those keys and ``x_axis``. ``stream="system"``
        (system metrics) is empty: cairn records none."""
        from cairn.sdk._history import sample, select_keys

        if stream not in ("default", "system"):
            raise ValidationError(f"invalid stream {stream!r}: use 'default' or 'system'")
        if keys is not None and (isinstance(keys, str) or not isinstance(keys, Sequence)):
            raise ValueError("keys must be a list of strings")
        rows = [] if stream == "system" else self._rows(None, None)
        wanted = None if keys is None else [x_axis, *(k for k in keys if k != x_axis)]
        picked = sample(list(select_keys(rows, wanted)), samples)
        if not pandas:
            return picked
        try:
            import pandas as pd  # type: ignore[import-untyped]
        except ImportError:
            from cairn._extras import missing_extra

            raise missing_extra("Run.history() (or pandas=False)", "data", "pandas") from None
        return pd.DataFrame.from_records(picked)

    def scan_history(
        self,
        keys: Sequence[str] | None = None,
        page_size: int = 1000,
        min_step: int | None = None,
        max_step: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every logged row, in step order, read ``page_size`` rows at a time (W&B's
        ``Run.scan_history``); with ``keys``, only rows holding every key, with only those
        keys; ``min_step <= _step < max_step``."""
        from cairn.sdk._history import select_keys

        if page_size < 1:
            raise ValidationError(f"page_size must be 1 or more, not {page_size}")
        wanted = None if keys is None else list(keys)
        return select_keys(self._pages(min_step, max_step, page_size), wanted)

    def delete(self, delete_artifacts: bool = False) -> None:
        """Delete the run. Versions it logged stay (with no logging run) unless
        ``delete_artifacts=True`` deletes them too, aliases included (W&B's ``Run.delete``)."""
        r = self._record
        self._service.delete_run(r.entity, r.project, r.id, delete_artifacts=delete_artifacts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ApiRun) and other._record.path == self._record.path

    def __hash__(self) -> int:
        return hash(self._record.path)

    def __repr__(self) -> str:
        return f"<Run {self._record.path} ({self.state})>"


class Runs(list[ApiRun]):
    """The runs ``Api.runs`` found: a list (``len``, indexing, iteration), as W&B's ``Runs``."""

    def __init__(self, runs: list[ApiRun], entity: str, project: str) -> None:
        super().__init__(runs)
        self.entity = entity
        self.project = project

    @property
    def length(self) -> int:
        return len(self)
