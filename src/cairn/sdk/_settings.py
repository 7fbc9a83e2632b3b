"""Configuration from the environment (overridable by arguments), and the service it selects."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import platformdirs

from cairn.service import LocalService, Service

_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True, slots=True)
class Settings:
    """Where cairn keeps things. Every field comes from a ``CAIRN_*`` variable (see README)."""

    dir: str
    base_url: str | None
    api_key: str | None
    cache_dir: str
    artifact_dir: str
    project: str
    entity: str | None
    run_group: str | None
    silent: bool

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            dir=os.path.expanduser(env.get("CAIRN_DIR") or "~/.cairn"),
            base_url=env.get("CAIRN_BASE_URL") or None,
            api_key=env.get("CAIRN_API_KEY") or None,
            cache_dir=os.path.expanduser(
                env.get("CAIRN_CACHE_DIR") or platformdirs.user_cache_dir("cairn")
            ),
            artifact_dir=env.get("CAIRN_ARTIFACT_DIR") or os.path.join(".", "artifacts"),
            project=env.get("CAIRN_PROJECT") or "uncategorized",
            entity=env.get("CAIRN_ENTITY") or None,
            run_group=env.get("CAIRN_RUN_GROUP") or None,
            silent=(env.get("CAIRN_SILENT") or "").lower() in _TRUE,
        )


_services: dict[tuple[str, str | None, str | None, int], Service] = {}
_lock = threading.Lock()


def service_for(settings: Settings) -> Service:
    """The service for these settings, opened once per process."""
    key = (settings.dir, settings.base_url, settings.api_key, os.getpid())
    with _lock:
        svc = _services.get(key)
        if svc is None:
            if settings.base_url:
                from cairn.service import http_service

                svc = http_service(settings.base_url, settings.api_key, settings.cache_dir)
            else:
                svc = LocalService.open(settings.dir)
            _services[key] = svc
        return svc


def current_service() -> Service:
    return service_for(Settings.from_env())


def reset_services() -> None:
    """Close every service this process opened (tests use this between stores)."""
    with _lock:
        for key, svc in list(_services.items()):
            if key[3] == os.getpid():
                svc.close()
        _services.clear()
