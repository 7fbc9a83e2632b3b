"""Configuration: one ``Settings`` object (cairn's and W&B's ``wandb.Settings``), read from the
environment once per entry point and passed down; the store it selects is opened by
``_session.session_for``."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any, cast

import platformdirs

from cairn.core import is_true
from cairn.errors import ValidationError

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


def parse_transfer_threads(value: object) -> int | None:
    """``CAIRN_TRANSFER_THREADS``: a number from 1 to 64, or None (unset: the client's default)."""
    if value is None or value == "":
        return None
    text = str(value)
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise ValidationError(
            f"CAIRN_TRANSFER_THREADS must be a number from 1 to 64, not {value!r}"
        )
    return int(text)


def parse_stage_workers(value: object) -> int | None:
    """``CAIRN_STAGE_WORKERS``: processes that read, hash and store new files, the calling one
    included (``1``: the calling process does it all; ``n``: it and ``n - 1`` workers); None when
    unset (the stager then uses one per core where the data's shape gains from it)."""
    if value is None or value == "":
        return None
    try:
        count = int(str(value))
    except ValueError:
        count = 0
    if count < 1:
        raise ValidationError(
            f"invalid CAIRN_STAGE_WORKERS {value!r}: give a number of processes (1 or more;"
            " 1 stages in the calling process)"
        )
    return count


PROGRESS_MODES = ("auto", "plain", "off")


def parse_progress(value: object) -> str:
    """``CAIRN_PROGRESS``: ``auto`` (unset), ``plain`` or ``off``."""
    mode = str(value or "auto").lower()
    if mode not in PROGRESS_MODES:
        raise ValidationError(
            f"invalid CAIRN_PROGRESS {mode!r}: use 'auto' (a bar on a terminal), 'plain' (a line"
            " every few seconds, for logs) or 'off'"
        )
    return mode


def parse_progress_seconds(value: object) -> float:
    """``CAIRN_PROGRESS_SECONDS``: seconds between two plain lines (0 or more; unset: 5)."""
    raw = "5" if value is None or value == "" else str(value)
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise ValidationError(
            f"invalid CAIRN_PROGRESS_SECONDS {raw!r}: give a number of seconds (0 or more)"
        )
    return seconds


def progress_output(settings: Settings | None) -> tuple[str | None, float]:
    """How long work shows progress: ``"bar"`` (a terminal, ``CAIRN_PROGRESS=auto``),
    ``"plain"`` (a line every ``CAIRN_PROGRESS_SECONDS``, for CI logs) or None (silent, W&B's
    ``silent`` too, or no terminal), and the seconds between two lines. ``settings``: those the
    caller was handed (None: a caller without any, which reads the environment now)."""
    if settings is None:
        settings = Settings.from_env()
    if settings.silent:
        return None, 0.0
    mode, seconds = settings.progress, settings.progress_seconds
    if mode == "plain":
        return "plain", seconds
    if mode == "auto" and sys.stderr.isatty():
        return "bar", seconds
    return None, seconds


# W&B's setting -> cairn's name for it (the same but for two).
_WANDB = {
    "api_key": "api_key",
    "base_url": "base_url",
    "mode": "mode",
    "project": "project",
    "entity": "entity",
    "run_group": "run_group",
    "run_job_type": "job_type",
    "run_name": "run_name",
    "run_id": "run_id",
    "root_dir": "run_dir",
    "silent": "silent",
}
_WANDB_NAME = {"job_type": "run_job_type", "run_dir": "root_dir"}  # cairn's name -> W&B's


class Settings:
    """cairn's configuration, and W&B's ``wandb.Settings``: one object.

    ``Settings.from_env()`` reads every setting from the environment, once: a ``CAIRN_*``
    variable, else W&B's variable of the same meaning (README's configuration table). Each entry
    point (``init``, ``Api``, the store an artifact uses) reads it once and passes it down.

    ``Settings(**settings)`` is W&B's ``wandb.Settings``, given to ``init(settings=...)``: the
    settings cairn has a meaning for are listed in ``MAPPED`` (``base_url`` and ``api_key`` name a
    cairn server, as ``CAIRN_BASE_URL``/``CAIRN_API_KEY`` do; W&B's ``run_job_type`` and
    ``root_dir`` are cairn's ``job_type`` and ``run_dir``); W&B's other settings (``console``,
    ``x_*``, ...) are accepted and kept, and change nothing. ``given.apply(env)`` is ``env`` with
    what ``given`` sets. A setting that was not set reads as None; settings from ``from_env``
    always have the store's own fields (``dir``, ``cache_dir``, ``artifact_dir``, ``project``,
    ``mode``, ``silent``).
    """

    MAPPED = tuple(_WANDB)

    def __init__(self, **settings: Any) -> None:
        if settings.get("mode") is not None:
            settings["mode"] = parse_mode(settings["mode"])
        for name in ("base_url", "api_key"):
            value = settings.get(name)
            if value is not None and not isinstance(value, str):
                raise ValidationError(f"Settings({name}=...) must be a string, got {value!r}")
        self.__dict__["_values"] = settings

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
            silent=is_true(env_value("CAIRN_SILENT", "WANDB_SILENT")),
            job_type=env_value("CAIRN_JOB_TYPE", "WANDB_JOB_TYPE"),
            run_name=env_value("CAIRN_RUN_NAME", "WANDB_NAME"),
            run_id=env_value("CAIRN_RUN_ID", "WANDB_RUN_ID"),
            mode=env_value("CAIRN_MODE", "WANDB_MODE") or "online",
            run_dir=env_value("CAIRN_RUN_DIR", "WANDB_DIR"),
            data_dir=env_value("CAIRN_DATA_DIR", "WANDB_DATA_DIR"),
            transfer_threads=env_value("CAIRN_TRANSFER_THREADS"),
            stage_workers=env_value("CAIRN_STAGE_WORKERS"),
            allow_network_fs=is_true(env_value("CAIRN_ALLOW_NETWORK_FS")),
            progress=env_value("CAIRN_PROGRESS"),
            progress_seconds=env_value("CAIRN_PROGRESS_SECONDS"),
        )

    def _get(self, name: str) -> Any:
        values = self.__dict__["_values"]
        value = values.get(name)
        if value is None and name in _WANDB_NAME:
            value = values.get(_WANDB_NAME[name])
        return value

    # -- the settings cairn reads (cairn's names) -------------------------------------------------

    @property
    def dir(self) -> str:
        """The embedded store's directory (``CAIRN_DIR``)."""
        return cast(str, self._get("dir"))

    @property
    def cache_dir(self) -> str:
        return cast(str, self._get("cache_dir"))

    @property
    def artifact_dir(self) -> str:
        return cast(str, self._get("artifact_dir"))

    @property
    def base_url(self) -> str | None:
        return cast("str | None", self._get("base_url"))

    @property
    def api_key(self) -> str | None:
        return cast("str | None", self._get("api_key"))

    @property
    def project(self) -> str:
        return cast(str, self._get("project"))

    @property
    def entity(self) -> str | None:
        return cast("str | None", self._get("entity"))

    @property
    def run_group(self) -> str | None:
        return cast("str | None", self._get("run_group"))

    @property
    def silent(self) -> bool:
        return bool(self._get("silent"))

    @property
    def job_type(self) -> str | None:
        return cast("str | None", self._get("job_type"))

    @property
    def run_name(self) -> str | None:
        return cast("str | None", self._get("run_name"))

    @property
    def run_id(self) -> str | None:
        return cast("str | None", self._get("run_id"))

    @property
    def mode(self) -> str:
        return cast(str, self._get("mode"))

    @property
    def run_dir(self) -> str | None:
        """The root of run files (``run.dir``); None: the working directory."""
        return cast("str | None", self._get("run_dir"))

    @property
    def data_dir(self) -> str | None:
        """The root of staging files (``new_file``); None: the temporary directory."""
        return cast("str | None", self._get("data_dir"))

    @property
    def transfer_threads(self) -> int | None:
        """Parts (or batches, or ranges) a client of a cairn server sends or fetches at once
        (``CAIRN_TRANSFER_THREADS``, 1 to 64); None: the client's default (4)."""
        return parse_transfer_threads(self._get("transfer_threads"))

    @property
    def stage_workers(self) -> int | None:
        """Processes that stage new files for the embedded store, the calling one included
        (``CAIRN_STAGE_WORKERS``); None: not chosen (the stager decides by the data's shape)."""
        return parse_stage_workers(self._get("stage_workers"))

    @property
    def allow_network_fs(self) -> bool:
        """Whether an embedded store may live on a network or FUSE file system
        (``CAIRN_ALLOW_NETWORK_FS``)."""
        return bool(self._get("allow_network_fs"))

    @property
    def progress(self) -> str:
        """How progress shows (``CAIRN_PROGRESS``): ``auto``, ``plain`` or ``off``; checked
        when progress starts (``progress_output``)."""
        return parse_progress(self._get("progress"))

    @property
    def progress_seconds(self) -> float:
        """Seconds between two plain progress lines (``CAIRN_PROGRESS_SECONDS``; 5)."""
        return parse_progress_seconds(self._get("progress_seconds"))

    # -- W&B's interface ------------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("_values")
        if values is None:  # not initialised yet (copy, pickle)
            raise AttributeError(name)
        if name in values:
            return values[name]
        if name in _WANDB:
            return self._get(_WANDB[name])
        raise AttributeError(f"Settings has no setting {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "mode" and value is not None:
            value = parse_mode(value)
        self.__dict__["_values"][name] = value

    def update(self, settings: Mapping[str, Any] | Settings | None = None, **kwargs: Any) -> None:
        """Set several settings at once (W&B's ``Settings.update``)."""
        values = settings.to_dict() if isinstance(settings, Settings) else dict(settings or {})
        for name, value in {**values, **kwargs}.items():
            setattr(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__["_values"])

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` (cairn's names)."""
        values = self.to_dict()
        for name in changes:
            values.pop(_WANDB_NAME.get(name, name), None)
        return Settings(**{**values, **changes})

    def apply(self, base: Settings) -> Settings:
        """``base`` with the settings this object sets (the others are left as they are)."""
        changes: dict[str, Any] = {}
        for name, field in _WANDB.items():
            value = self.__dict__["_values"].get(name)
            if value is not None:
                changes[field] = bool(value) if field == "silent" else value
        return base.replace(**changes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Settings):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = {k: ("***" if k == "api_key" and v else v) for k, v in self.to_dict().items()}
        return f"Settings({', '.join(f'{k}={v!r}' for k, v in shown.items())})"
