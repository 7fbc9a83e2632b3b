"""``cairn.init()`` (W&B's ``wandb.init``) and W&B's module-level calls on the active run
(``cairn.log``, ``cairn.log_artifact``, ``cairn.finish``, ``cairn.summary``, ...).

``init`` reads the environment's settings once, merges ``init(settings=..., mode=...)`` into
them, opens (or finds) the store's session and starts the run in it."""

from __future__ import annotations

import atexit
import os
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from cairn.core import RUNNING, RunRecord, validate_project
from cairn.errors import NotFoundError, UsageError, ValidationError
from cairn.sdk._artifact import Artifact
from cairn.sdk._disabled import DisabledRun, disabled_record
from cairn.sdk._history import Metric, Summary
from cairn.sdk._run import Run, activate, current_run, finish_active, new_run_id
from cairn.sdk._session import same_store, session_for, set_run_session
from cairn.sdk._settings import Settings, parse_mode
from cairn.service import Service

_RUN_ID_RE = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


def init(
    project: str | None = None,
    entity: str | None = None,
    group: str | None = None,
    job_type: str | None = None,
    name: str | None = None,
    config: dict[str, Any] | Any = None,
    dir: str | None = None,
    id: str | None = None,
    tags: Sequence[str] | None = None,
    notes: str | None = None,
    reinit: bool | str | None = None,
    resume: bool | str | None = None,
    mode: str | None = None,
    settings: Any = None,
    save_code: bool | None = None,
    anonymous: str | None = None,
) -> Run:
    """Start a run (W&B's ``wandb.init``) and make it the active one, ``cairn.run``.

    ``project``, ``entity``, ``group``, ``job_type``, ``name`` and ``id`` default to
    ``CAIRN_PROJECT`` (else ``uncategorized``), ``CAIRN_ENTITY`` (else the store's user),
    ``CAIRN_RUN_GROUP``, ``CAIRN_JOB_TYPE``, ``CAIRN_RUN_NAME`` and ``CAIRN_RUN_ID``, each falling
    back to W&B's variable (``WANDB_PROJECT``, ...). ``mode`` (else ``CAIRN_MODE``/``WANDB_MODE``)
    is ``online``, ``offline`` (the embedded store even where a server is configured) or
    ``disabled`` (a run that records nothing, as in W&B). ``settings`` is a ``cairn.Settings`` or a
    dict of W&B's settings. ``resume`` follows W&B: ``"allow"`` (or True, None) resumes the run
    with that id if there is one, ``"must"`` requires it, ``"never"`` refuses it; a resumed run's
    config is merged with ``config``. A run that is still active in this process is finished
    first. ``tags``, ``notes``, ``reinit``, ``save_code`` and ``anonymous`` are accepted so W&B
    code runs unchanged.
    """
    environment, env = _init_settings(mode, settings)
    if env.mode == "disabled":
        return activate(
            DisabledRun(
                disabled_record(project, entity, group, job_type, name, config, id, env), env, dir
            )
        )
    # "offline": the embedded store even where a server is configured (W&B logs locally, to
    # sync later; here `cairn sync` moves the versions).
    store = env.replace(base_url=None) if env.mode == "offline" else env
    session = session_for(store)
    service = session.service
    project = validate_project(project or env.project)
    entity = validate_project(entity or env.entity or service.default_entity, "entity")
    run_id = id or env.run_id or new_run_id()
    if not _RUN_ID_RE.match(run_id):
        raise ValidationError(f"invalid run id {run_id!r}: use 1-64 letters, digits, '-' or '_'")
    _check_resume(service, entity, project, run_id, resume, given_id=bool(id or env.run_id))
    cfg = dict(config) if config is not None else {}
    job_type = job_type or env.job_type
    record = RunRecord(
        id=run_id,
        entity=entity,
        project=project,
        name=name or env.run_name or f"{job_type or 'run'}-{run_id}",
        group=group or env.run_group,
        job_type=job_type,
        config=cfg,
        state=RUNNING,
        created_at=time.time(),
    )
    finish_active()
    created = record.created_at
    record = service.start_run(record)
    resumed = abs(record.created_at - created) > 1e-6  # an existing run keeps its start time
    run = activate(Run(session, record, env, dir, resumed=resumed))
    if not same_store(store, environment):
        set_run_session(session)
    return run


def _check_resume(
    service: Service, entity: str, project: str, run_id: str, resume: object, *, given_id: bool
) -> None:
    """W&B's ``resume``: ``"allow"`` (or True, ``"auto"``, None) resumes a run with that id if
    there is one; ``"must"`` requires one; ``"never"`` refuses one. A resumed run keeps its
    config, merged with the config given now."""
    if resume not in (None, False, True, "allow", "auto", "must", "never"):
        raise ValidationError(
            f"invalid resume {resume!r}: use 'allow', 'must', 'never' (or True/False)"
        )
    if resume not in ("must", "never"):
        return
    if resume == "must" and not given_id:
        raise UsageError("resume='must' needs the id of the run to resume: init(id=...)")
    try:
        service.get_run(entity, project, run_id)
        exists = True
    except NotFoundError:
        exists = False
    if resume == "must" and not exists:
        raise UsageError(
            f"resume='must' but run {entity}/{project}/{run_id} does not exist; start it first"
            " or use resume='allow'"
        )
    if resume == "never" and exists:
        raise UsageError(
            f"resume='never' but run {entity}/{project}/{run_id} exists; choose another id"
        )


def _init_settings(mode: str | None, settings: Any) -> tuple[Settings, Settings]:
    """The environment's settings (read once, here), and the run's: the environment's, then
    ``init(settings=...)``'s, then ``init(mode=...)``."""
    from cairn.sdk._login import as_settings

    environment = Settings.from_env()
    env = environment
    given = as_settings(settings)
    if given is not None:
        env = given.apply(env)
    if mode is not None:
        env = env.replace(mode=parse_mode(mode))
    return environment, env


def finish(exit_code: int | None = None, quiet: bool | None = None) -> None:
    """Finish the active run, if there is one."""
    run = current_run()
    if run is not None:
        run.finish(exit_code=exit_code, quiet=quiet)


def log_artifact(
    artifact_or_path: Artifact | str | os.PathLike[str],
    name: str | None = None,
    type: str | None = None,
    aliases: Sequence[str] | None = None,
    tags: Sequence[str] | None = None,
) -> Artifact:
    """``cairn.run.log_artifact(...)`` on the active run."""
    return _require_run("log_artifact").log_artifact(artifact_or_path, name, type, aliases, tags)


def use_artifact(
    artifact_or_name: Artifact | str, type: str | None = None, aliases: Sequence[str] | None = None
) -> Artifact:
    """``cairn.run.use_artifact(...)`` on the active run."""
    return _require_run("use_artifact").use_artifact(artifact_or_name, type, aliases)


def log_model(
    path: str | os.PathLike[str], name: str | None = None, aliases: Sequence[str] | None = None
) -> Artifact:
    """``cairn.run.log_model(...)`` on the active run."""
    return _require_run("log_model").log_model(path, name, aliases)


def use_model(name: str) -> str:
    """``cairn.run.use_model(name)`` on the active run."""
    return _require_run("use_model").use_model(name)


def define_metric(
    name: str,
    step_metric: str | None = None,
    step_sync: bool | None = None,
    hidden: bool | None = None,
    summary: str | None = None,
    goal: str | None = None,
    overwrite: bool | None = None,
) -> Metric:
    """``cairn.run.define_metric(...)`` on the active run (W&B's ``wandb.define_metric``)."""
    return _require_run("define_metric").define_metric(
        name, step_metric, step_sync, hidden, summary, goal, overwrite
    )


def log(
    data: Mapping[str, Any],
    step: int | None = None,
    commit: bool | None = None,
    sync: bool | None = None,
) -> None:
    """``cairn.run.log(...)`` on the active run (W&B's ``wandb.log``)."""
    _require_run("log").log(data, step=step, commit=commit, sync=sync)


class _NoRunSummary(Summary):
    """``cairn.summary`` before ``cairn.init()``: reading is empty, writing says what to do."""

    def update(self, *args: Any, **kwargs: Any) -> None:
        raise UsageError("cairn.summary needs an active run: call cairn.init() first")

    def __delitem__(self, key: str) -> None:
        raise UsageError("cairn.summary needs an active run: call cairn.init() first")


def active_summary() -> Summary:
    """``cairn.summary``: the active run's summary (W&B's ``wandb.summary``)."""
    run = current_run()
    return run.summary if run is not None else _NoRunSummary()


def _require_run(what: str) -> Run:
    run = current_run()
    if run is None:
        raise UsageError(f"cairn.{what}() needs an active run: call cairn.init() first")
    return run


@atexit.register
def _finish_at_exit() -> None:
    # As in W&B, a script that ends without finish() still finishes its run.
    run = current_run()
    if run is not None and not run.finished:
        try:
            run.finish()
        except Exception:  # noqa: BLE001 - the interpreter is exiting; nothing to report to
            pass
