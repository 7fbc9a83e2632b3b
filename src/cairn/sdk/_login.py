"""W&B's ``wandb.login``, and ``init(settings=...)``'s argument as a ``Settings``.

cairn never reads W&B's credentials (``WANDB_API_KEY``, ``WANDB_BASE_URL``, ``~/.netrc``): they
belong to W&B's cloud. ``login(key=..., host=...)`` sets ``CAIRN_API_KEY`` and ``CAIRN_BASE_URL``
for this process, and ``Settings(api_key=..., base_url=...)`` given to ``init`` does the same for
that run only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from cairn.errors import ValidationError
from cairn.sdk._session import current_service
from cairn.sdk._settings import Settings


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
