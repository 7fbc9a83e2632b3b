"""The Run ``cairn.init()`` returns (W&B's ``wandb.Run``), its ``Config``, and the active run of the
process (``cairn.run``). ``init`` itself and W&B's module-level calls are in ``_init.py``."""

from __future__ import annotations

import hashlib
import json
import numbers
import os
import re
import secrets
import string
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any, cast

from cairn.core import (
    FAILED,
    FINISHED,
    RunRecord,
)
from cairn.errors import RunFinishedError
from cairn.sdk._artifact import Artifact
from cairn.sdk._history import HistoryWriter, Metric, Summary, dumps, encode
from cairn.sdk._objects import Table
from cairn.sdk._run_artifacts import RunArtifacts
from cairn.sdk._session import Session, set_run_session
from cairn.sdk._settings import Settings
from cairn.sdk._values import warn_user
from cairn.service import Service

_ALPHABET = string.ascii_lowercase + string.digits
_current: Run | None = None
_current_lock = threading.Lock()


def new_run_id() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(8))


def current_run() -> Run | None:
    """The active run of this process (``cairn.run``), or None."""
    return _current


class Config(dict[str, Any]):
    """A run's configuration: a dict whose keys can also be read and set as attributes."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"config has no key {key!r}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def update(self, *args: Any, allow_val_change: bool | None = None, **kwargs: Any) -> None:
        super().update(*args, **kwargs)


class Run(RunArtifacts):
    """A unit of work that logs and uses artifacts. Use it as a context manager, or call
    ``finish()``; an exception escaping the ``with`` block marks the run failed."""

    def __init__(
        self,
        session: Session,
        record: RunRecord,
        settings: Settings,
        dir: str | None,
        resumed: bool = False,
    ) -> None:
        self._session = session
        # A disabled run has no session: it never touches a store.
        self._service = session.service if session is not None else cast(Service, None)
        self._record = record
        self._settings = settings
        self._config = Config(record.config)
        self._finished = False
        self._dir = dir
        self._files_dir: str | None = None
        self._resumed = resumed
        self._writer: HistoryWriter | None = None
        self._writer_lock = threading.Lock()

    # -- properties --

    @property
    def id(self) -> str:
        return self._record.id

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def project(self) -> str:
        return self._record.project

    @property
    def entity(self) -> str:
        return self._record.entity

    @property
    def group(self) -> str | None:
        return self._record.group

    @property
    def job_type(self) -> str | None:
        return self._record.job_type

    @property
    def config(self) -> Config:
        return self._config

    @property
    def dir(self) -> str:
        """The run's files directory, ``<root>/cairn/run-<time>-<id>/files`` (created when first
        asked for), where root is ``init(dir=...)``, else ``CAIRN_RUN_DIR``/``WANDB_DIR``, else
        the working directory: W&B's layout under ``cairn/`` instead of ``wandb/``."""
        if self._files_dir is None:
            root = self._dir or self._settings.run_dir or os.getcwd()
            stamp = time.strftime("%Y%m%d_%H%M%S", time.gmtime(self._record.created_at))
            path = os.path.join(os.path.abspath(root), "cairn", f"run-{stamp}-{self.id}", "files")
            os.makedirs(path, exist_ok=True)
            self._files_dir = path
        return self._files_dir

    @property
    def disabled(self) -> bool:
        """Whether this is a no-op run (``mode="disabled"``, as in W&B)."""
        return False

    @property
    def offline(self) -> bool:
        """Whether the run logs to the embedded store although a server is configured."""
        return self._settings.mode == "offline"

    @property
    def path(self) -> str:
        return self._record.path

    @property
    def state(self) -> str:
        return self._record.state

    @property
    def finished(self) -> bool:
        return self._finished

    # -- history and summary (W&B's run.log, run.summary) --

    def _history(self) -> HistoryWriter:
        with self._writer_lock:
            if self._writer is None:
                stored = None
                if self._resumed:  # a resumed run goes on from its last step and summary
                    stored = json.loads(
                        self._service.run_summary(self.entity, self.project, self.id)
                    )
                self._writer = HistoryWriter(
                    self._service,
                    self.entity,
                    self.project,
                    self.id,
                    self._record.created_at or time.time(),
                    stored,
                )
            return self._writer

    @property
    def summary(self) -> Summary:
        """The run's summary (W&B's ``run.summary``): each logged key's last value; set keys
        with ``run.summary["best"] = 0.9`` or ``run.summary.update({...})``."""
        return self._history().summary

    @property
    def step(self) -> int:
        """The step the next ``log`` call writes (W&B's ``run.step``)."""
        return self._history().step

    def log(
        self,
        data: Mapping[str, Any],
        step: int | None = None,
        commit: bool | None = None,
        sync: bool | None = None,
    ) -> None:
        """Log a dict of values to the run's history (W&B's ``run.log``) and its summary.

        Without ``step`` each call is a new step (``_step`` 0, 1, ...); with ``step`` values of
        the same step make one row, written when a later step is logged or the run finishes, and
        a step behind the current one is ignored with a warning. ``commit=False`` keeps adding to
        the current step. A ``cairn.Table`` value is logged as W&B does: a ``run_table`` artifact
        ``run-<run id>-<key>`` holding ``<key>.table.json``, referenced from the history row.
        """
        self._check_active("log")
        if not isinstance(data, Mapping):
            raise ValueError("run.log() must be passed a dictionary of values")
        for key in data:
            if not isinstance(key, str):
                raise TypeError(f"the keys passed to run.log() must be strings, not {key!r}")
        if step is not None:
            if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
                raise ValueError(f"step must be an integer of 0 or more, not {step!r}")
            step = int(step)
        writer = self._history()
        if step is not None and step < writer.step:
            warn_user(
                f"run.log(step={step}) is behind the current step {writer.step}: steps only go"
                " forward, so these values are dropped (as in W&B)"
            )
            return
        values = {}
        for key, value in data.items():
            if type(value).__module__.startswith("pandas") and type(value).__name__ == "DataFrame":
                value = Table(dataframe=value)  # W&B logs a DataFrame as a Table
            if isinstance(value, Table):
                values[key] = self._log_table(key, value)
            else:
                values[key] = encode(value)
        values = json.loads(dumps(values))  # stored and read back as the same JSON
        writer.log(values, step, commit)

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
        """Say how a metric is summarised and what its x axis is (W&B's
        ``run.define_metric``): ``summary`` is any of ``min max mean best last first copy
        none`` (comma-separated; the run's summary then holds ``{"min": ...}`` and so on for
        it), ``goal`` ``minimize``/``maximize`` picks ``best``, ``step_metric`` names the x axis
        (with ``step_sync``, default on, its last value joins each row of this metric). A name
        ending in ``*`` defines every metric starting so. Defining a metric again adds to it
        (``overwrite=True`` replaces it)."""
        self._check_active("define_metric")
        metric = Metric(name, step_metric, step_sync, hidden, summary, goal)
        return self._history().define_metric(metric, overwrite)

    def _log_table(self, key: str, table: Table) -> dict[str, Any]:
        """W&B's table logging: the table in its own ``run_table`` artifact, and a reference."""
        from cairn.sdk._objects import encode_object

        name = _artifact_safe_name(f"run-{self.id}-{key}")
        entry_path, data = encode_object(table, key)
        artifact = Artifact(name, "table")
        artifact._type = "run_table"  # W&B's own type for these; reserved in Artifact(...)
        artifact.add(table, key)
        logged = self.log_artifact(artifact)
        logged.wait()
        return {
            "_type": "table-file",
            "path": entry_path,
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "ncols": len(table.columns),
            "nrows": len(table.data),
            "artifact_path": f"wandb-artifact://{logged.id}/{entry_path}",
            "_latest_artifact_path": (
                f"wandb-artifact://{self.entity}/{self.project}/{name}:latest/{entry_path}"
            ),
        }

    def __repr__(self) -> str:
        return f"<Run {self.path} ({self.name})>"

    # -- lifecycle --

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finish(exit_code=0 if exc_type is None else 1)

    def finish(self, exit_code: int | None = None, quiet: bool | None = None) -> None:
        """End the run (``exit_code`` other than 0 marks it failed). Calling it twice is harmless."""
        if self._finished:
            return
        if self._writer is not None:
            self._writer.flush()
        self._finished = True
        state = FINISHED if not exit_code else FAILED
        self._service.finish_run(self.entity, self.project, self.id, state, dict(self._config))
        self._record = self._service.get_run(self.entity, self.project, self.id)
        deactivate(self)

    def _check_active(self, what: str) -> None:
        if self._finished:
            raise RunFinishedError(
                f"run {self.path} has finished; {what} needs an active run: start one with"
                " cairn.init()"
            )


def _artifact_safe_name(name: str) -> str:
    """W&B's artifact-safe name: characters other than letters, digits, ``-``, ``_`` and ``.``
    become ``_``; at most 128 characters."""
    return re.sub(r"[^A-Za-z0-9_\-.]", "_", name)[:128]


def finish_active() -> None:
    """Finish the active run, if it is still running (a new one is starting)."""
    with _current_lock:
        previous = _current
    if previous is not None and not previous.finished:
        previous.finish()


def activate(run: Run) -> Run:
    """Make ``run`` the active run of the process (``cairn.run``), finishing the one before."""
    global _current
    finish_active()
    with _current_lock:
        _current = run
    return run


def deactivate(run: Run) -> None:
    """``run`` has finished: if it is the active run, there is none now (nor its store)."""
    global _current
    with _current_lock:
        if _current is run:
            _current = None
            set_run_session(None)
