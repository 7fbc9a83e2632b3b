"""Configuration from the environment (overridable by arguments); the store it selects is opened
by ``_session.session_for``."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import platformdirs

from cairn.errors import ValidationError

_TRUE = {"1", "true", "yes", "on"}

# W&B's run modes; "dryrun" and "run" are W&B's older names for "offline" and "online".
MODES = {
    "online": "online",
    "shared": "online",
    "run": "online",
    "offline": "offline",
    "dryrun": "offline",
    "disabled": "disabled",
}


def env_value(cairn_name: str, wandb_name: str | None = None) -> str | None:
    """The ``CAIRN_*`` variable, else (when it is unset or empty) W&B's variable of the same
    meaning. W&B's credentials (``WANDB_API_KEY``, ``WANDB_BASE_URL``, ``.netrc``) are never read:
    they are for W&B's cloud, not for a cairn server."""
    value = os.environ.get(cairn_name)
    if not value and wandb_name is not None:
        value = os.environ.get(wandb_name)
    return value or None


def parse_mode(mode: object) -> str:
    """``online``, ``offline`` or ``disabled`` from any of W&B's mode names."""
    if not isinstance(mode, str) or mode.lower() not in MODES:
        raise ValidationError(
            f"invalid mode {mode!r}: use 'online', 'offline' or 'disabled' (as in W&B)"
        )
    return MODES[mode.lower()]


PROGRESS_MODES = ("auto", "plain", "off")


def progress_output() -> tuple[str | None, float]:
    """How long work shows progress: ``"bar"`` (a terminal, ``CAIRN_PROGRESS=auto``),
    ``"plain"`` (a line every ``CAIRN_PROGRESS_SECONDS``, for CI logs) or None (silent, or no
    terminal), and the seconds between two lines."""
    if (env_value("CAIRN_SILENT", "WANDB_SILENT") or "").lower() in _TRUE:
        return None, 0.0
    mode = (env_value("CAIRN_PROGRESS") or "auto").lower()
    if mode not in PROGRESS_MODES:
        raise ValidationError(
            f"invalid CAIRN_PROGRESS {mode!r}: use 'auto' (a bar on a terminal), 'plain' (a line"
            " every few seconds, for logs) or 'off'"
        )
    raw = env_value("CAIRN_PROGRESS_SECONDS") or "5"
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise ValidationError(
            f"invalid CAIRN_PROGRESS_SECONDS {raw!r}: give a number of seconds (0 or more)"
        )
    if mode == "plain":
        return "plain", seconds
    if mode == "auto" and sys.stderr.isatty():
        return "bar", seconds
    return None, seconds


@dataclass(frozen=True, slots=True)
class Settings:
    """Where cairn keeps things. Every field comes from a ``CAIRN_*`` variable, else from W&B's
    variable of the same meaning (see README's configuration table)."""

    dir: str
    base_url: str | None
    api_key: str | None
    cache_dir: str
    artifact_dir: str
    project: str
    entity: str | None
    run_group: str | None
    silent: bool
    job_type: str | None = None
    run_name: str | None = None
    run_id: str | None = None
    mode: str = "online"
    run_dir: str | None = None  # root of run files (run.dir); None: the working directory
    data_dir: str | None = None  # root of staging files (new_file); None: the temp directory

    @classmethod
    def from_env(cls) -> Settings:
        cache = env_value("CAIRN_CACHE_DIR", "WANDB_CACHE_DIR")
        return cls(
            dir=os.path.expanduser(env_value("CAIRN_DIR") or "~/.cairn"),
            base_url=env_value("CAIRN_BASE_URL"),
            api_key=env_value("CAIRN_API_KEY"),
            cache_dir=os.path.expanduser(cache or platformdirs.user_cache_dir("cairn")),
            artifact_dir=env_value("CAIRN_ARTIFACT_DIR", "WANDB_ARTIFACT_DIR")
            or os.path.join(".", "artifacts"),
            project=env_value("CAIRN_PROJECT", "WANDB_PROJECT") or "uncategorized",
            entity=env_value("CAIRN_ENTITY", "WANDB_ENTITY"),
            run_group=env_value("CAIRN_RUN_GROUP", "WANDB_RUN_GROUP"),
            silent=(env_value("CAIRN_SILENT", "WANDB_SILENT") or "").lower() in _TRUE,
            job_type=env_value("CAIRN_JOB_TYPE", "WANDB_JOB_TYPE"),
            run_name=env_value("CAIRN_RUN_NAME", "WANDB_NAME"),
            run_id=env_value("CAIRN_RUN_ID", "WANDB_RUN_ID"),
            mode=parse_mode(env_value("CAIRN_MODE", "WANDB_MODE") or "online"),
            run_dir=env_value("CAIRN_RUN_DIR", "WANDB_DIR"),
            data_dir=env_value("CAIRN_DATA_DIR", "WANDB_DATA_DIR"),
        )
