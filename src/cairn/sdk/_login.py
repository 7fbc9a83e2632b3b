"""W&B's ``wandb.login`` and ``wandb.Settings``, mapped onto cairn's own settings.

cairn never reads W&B's credentials (``WANDB_API_KEY``, ``WANDB_BASE_URL``, ``~/.netrc``): they
belong to W&B's cloud. ``login(key=..., host=...)`` sets ``CAIRN_API_KEY`` and ``CAIRN_BASE_URL``
for this process, and ``Settings(api_key=..., base_url=...)`` given to ``init`` does the same for
that run only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from cairn.errors import ValidationError
from cairn.sdk._session import current_service
from cairn.sdk._settings import Settings as StoreSettings
from cairn.sdk._settings import parse_mode

# W&B's setting -> the field of cairn's settings it sets.
_MAPPED = {
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


class Settings:
    """W&B's ``wandb.Settings``: ``Settings(mode="disabled")``, ``Settings(base_url=...,
    api_key=...)``, ... given to ``init(settings=...)``.

    The settings cairn has a meaning for are listed in ``MAPPED`` (``base_url`` and ``api_key``
    name a cairn server, as ``CAIRN_BASE_URL``/``CAIRN_API_KEY`` do); W&B's other settings
    (``console``, ``x_*``, ...) are accepted and kept, and change nothing.
    """

    MAPPED = tuple(_MAPPED)

    def __init__(self, **settings: Any) -> None:
        if "mode" in settings and settings["mode"] is not None:
            settings["mode"] = parse_mode(settings["mode"])
        for name in ("base_url", "api_key"):
            value = settings.get(name)
            if value is not None and not isinstance(value, str):
                raise ValidationError(f"Settings({name}=...) must be a string, got {value!r}")
        self.__dict__["_values"] = dict(settings)

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__["_values"]
        if name in values:
            return values[name]
        if name in _MAPPED:
            return None
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

    def apply(self, base: StoreSettings) -> StoreSettings:
        """``base`` with the settings this object sets (the others are left as they are)."""
        changes: dict[str, Any] = {}
        for name, field in _MAPPED.items():
            value = self.__dict__["_values"].get(name)
            if value is not None:
                changes[field] = bool(value) if field == "silent" else value
        return _replace(base, changes)

    def __repr__(self) -> str:
        shown = {k: ("***" if k == "api_key" and v else v) for k, v in self.to_dict().items()}
        return f"Settings({', '.join(f'{k}={v!r}' for k, v in shown.items())})"


def _replace(base: StoreSettings, changes: Mapping[str, Any]) -> StoreSettings:
    import dataclasses

    return dataclasses.replace(base, **changes)


def as_settings(settings: object) -> Settings | None:
    """``init(settings=...)`` accepts a ``Settings``, a dict of settings, or None."""
    if settings is None or isinstance(settings, Settings):
        return settings
    if isinstance(settings, Mapping):
        return Settings(**dict(settings))
    raise ValidationError(
        f"settings must be a cairn.Settings or a dict, got {type(settings).__name__}"
    )


def login(
    key: str | None = None,
    relogin: bool | None = None,
    host: str | None = None,
    force: bool | None = None,
    timeout: int | None = None,
    verify: bool = False,
    anonymous: str | None = None,
    referrer: str | None = None,
) -> bool:
    """W&B's ``wandb.login``: ``key`` becomes ``CAIRN_API_KEY`` and ``host`` ``CAIRN_BASE_URL``
    for this process (W&B's own key and ``.netrc`` are never read). ``verify=True`` asks the
    store once, so a refused key raises ``AuthenticationError`` here. Returns True."""
    if key is not None:
        if not isinstance(key, str) or not key.strip():
            raise ValidationError("login(key=...) needs a non-empty API key of a cairn server")
        os.environ["CAIRN_API_KEY"] = key.strip()
    if host is not None:
        if not isinstance(host, str) or not host.startswith(("http://", "https://")):
            raise ValidationError(
                f"login(host=...) needs the URL of a cairn server (http:// or https://), got"
                f" {host!r}"
            )
        os.environ["CAIRN_BASE_URL"] = host.rstrip("/")
    if verify:
        current_service().list_projects()
    return True
