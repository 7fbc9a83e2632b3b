"""The SDK's session: one store as the SDK uses it, opened once and handed down.

A session holds the settings it was opened with, the store's ``Service``, the stat cache (digests
of local files by their stat) and the page reader (decoded manifest pages, shared by every
artifact read through it). One is opened per store per process (``session_for``); runs, artifacts
and the ``Api`` hold theirs and pass it on, so nothing is looked up again by the service or read
again from the environment below the call that opened it.
"""

from __future__ import annotations

import copy
import os
import threading
from typing import TYPE_CHECKING

from cairn.core import PageReader
from cairn.sdk._settings import Settings
from cairn.service import Service

if TYPE_CHECKING:
    # Loaded when first used: listing an embedded store (`cairn artifact ls`) needs neither.
    from cairn.sdk._staging import Stager
    from cairn.sdk._statcache import StatCache
    from cairn.service import LocalService
    from cairn.storage import LocalBlobStore


class Session:
    """Settings, service, stat cache and page reader of one store."""

    def __init__(
        self, settings: Settings, service: Service, embedded: LocalService | None = None
    ) -> None:
        """``embedded``: ``service`` again when it is the embedded store: its blob directory
        (``LocalService.local_blobs``) takes big jobs staged by worker processes, and its
        maintenance (gc, verify) runs here; None for a server or a wrapper around a store."""
        self.settings = settings
        self.service = service
        self.embedded = embedded
        self.local_blobs: LocalBlobStore | None = None if embedded is None else embedded.local_blobs
        self._stat_cache: StatCache | None = None
        self._reader: PageReader | None = None
        self._lock = threading.Lock()

    @property
    def reader(self) -> PageReader:
        """Manifest pages of this store, decoded once and shared."""
        with self._lock:
            if self._reader is None:
                # 64 decoded pages (~32,000 entries): reading a version in order needs one at a
                # time.
                self._reader = PageReader(self.service.read_blob, capacity=64)
            return self._reader

    @property
    def stat_cache(self) -> StatCache:
        """Digests of local files by their stat, under the settings' cache directory."""
        with self._lock:
            if self._stat_cache is None:
                path = os.path.join(self.settings.cache_dir, "stat-cache.sqlite")
                self._stat_cache = _stat_cache_at(path)
            return self._stat_cache

    def stager(self) -> Stager:
        """A new stager (one per artifact) storing into this store."""
        from cairn.sdk._staging import Stager

        return Stager(
            self.service,
            self.stat_cache,
            workers=self.settings.stage_workers,
            local_blobs=self.local_blobs,
            settings=self.settings,
        )

    def under(self, settings: Settings) -> Session:
        """This store under other settings (the same service, stat cache and lock): what an
        entry point that read other settings (the environment changed, a run's own) works in."""
        view = copy.copy(self)
        view.settings = settings
        return view

    def over(self, service: Service) -> Session:
        """These settings over another service (a wrapper around this one, say)."""
        return Session(self.settings, service)

    def close(self) -> None:
        self.service.close()


_sessions: dict[tuple[str, str | None, str | None, int], Session] = {}
# One stat cache per cache file (one SQLite connection), kept for the life of the process: every
# session with that cache directory shares it.
_stat_caches: dict[str, StatCache] = {}
_lock = threading.Lock()


def _stat_cache_at(path: str) -> StatCache:
    from cairn.sdk._statcache import StatCache

    with _lock:
        cache = _stat_caches.get(path)
        if cache is None:
            cache = _stat_caches[path] = StatCache(path)
        return cache


def same_store(a: Settings, b: Settings) -> bool:
    """Whether both settings select the same store."""
    if a.base_url or b.base_url:
        return (a.base_url, a.api_key) == (b.base_url, b.api_key)
    return a.dir == b.dir


def session_for(settings: Settings) -> Session:
    """The session of the store these settings select, opened once per process."""
    key = (settings.dir, settings.base_url, settings.api_key, os.getpid())
    with _lock:
        session = _sessions.get(key)
        if session is None:
            if settings.base_url:
                session = Session(
                    settings, open_server(settings.base_url, settings.api_key, settings)
                )
            else:
                local = open_embedded(settings.dir, settings)
                session = Session(settings, local, embedded=local)
            _sessions[key] = session
        elif session.settings != settings:
            # The environment changed since (one process, several commands), or a run's own
            # settings: the same store, under the newest settings from now on.
            session = _sessions[key] = session.under(settings)
        return session


def open_embedded(path: str, settings: Settings) -> LocalService:
    """The embedded store at ``path``, opened as ``settings`` allow (a network file system)."""
    # Loaded here, not at import: the catalog brings SQLAlchemy, a server needs none.
    from cairn.service import LocalService

    return LocalService.open(path, allow_network_fs=settings.allow_network_fs)


def open_server(base_url: str, api_key: str | None, settings: Settings) -> Service:
    """The cairn server at ``base_url``, with ``settings``' download cache and transfer threads."""
    from cairn.service import http_service

    return http_service(
        base_url, api_key, settings.cache_dir, transfer_threads=settings.transfer_threads
    )


# The session of the active run, when init(settings=..., mode="offline") chose another store than
# the environment names: artifacts built and queries made while it runs go there too.
_run_session: Session | None = None


def set_run_session(session: Session | None) -> None:
    global _run_session
    _run_session = session


def run_session() -> Session | None:
    """The active run's session when it chose another store than the environment's."""
    return _run_session


def current_session(settings: Settings | None = None) -> Session:
    """The active run's session if it chose its own store, else the session of the store
    ``settings`` select (by default the environment's, read now)."""
    if _run_session is not None:
        return _run_session
    return session_for(settings if settings is not None else Settings.from_env())


def current_service() -> Service:
    return current_session().service


def reset_services() -> None:
    """Close every session this process opened (tests use this between stores)."""
    set_run_session(None)
    with _lock:
        for key, session in list(_sessions.items()):
            if key[3] == os.getpid():
                session.close()
        _sessions.clear()
