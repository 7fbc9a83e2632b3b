"""What one API key may do: the permission rules of the server, written once.

A ``ScopedService`` (``_scoped.py``) is the server's Service as one key may use it; every REST
route and every page of the web UI calls one. The rules it applies, all here:

* a project the key may not read is "not found" (404), whether it exists or not; a key that may
  read but not do what it asks gets 403 (``Principal.require``);
* a version is looked up by id and then treated as its project (``_version``), with the same
  answer for a version that does not exist and one the key may not read;
* lists (projects, a run's versions, a version's runs and links, registries, lineage in exports)
  leave out what the key may not read;
* blobs: a key sees those it uploaded and those of projects it may read
  (``cairn.catalog.readable_blobs``); a commit may refer only to those, others are "missing"
  (a commit's changes are checked by the statement that grants them to its project, with the
  key's ``blob_reader``: ``cairn.catalog.BlobReader``, the same rule);
* uploads need write access somewhere; maintenance and API keys need a server admin key.

Input is validated by the routes (the adapter) before it gets here; these check only who may do
what.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from cairn.catalog import BlobReader, Uploads, readable_blobs
from cairn.core import RunRecord, VersionRecord
from cairn.errors import (
    ArtifactNotFoundError,
    BlobNotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from cairn.server._auth import Principal
from cairn.server._backend import Backend

_MAX_KNOWN = 200_000  # digests remembered as readable, per key


class KeyRules:
    """One key's view of the server's ``LocalService``: who it is and the rules of what it may
    read and do (the base of ``ScopedService``)."""

    def __init__(self, backend: Backend, who: Principal) -> None:
        self._b = backend
        self._inner = backend.service
        self.who = who
        self._uploads = Uploads(backend.catalog)
        self._known: set[str] = set()  # digests found readable (the UI keeps one per key)
        self._lock = threading.Lock()

    # -- identity --

    @property
    def default_entity(self) -> str:
        return self.who.user

    @property
    def location(self) -> str:
        return self._inner.location

    @property
    def is_local(self) -> bool:
        return True

    def close(self) -> None:
        """The server's service outlives any key's view of it."""

    # -- the rules --

    def require(self, entity: str, project: str, role: str = "read") -> None:
        self.who.require(entity, project, role)

    def can_read(self, entity: str, project: str) -> bool:
        return self.who.role_on(entity, project) is not None

    def may(self, entity: str, project: str, role: str) -> bool:
        """Whether ``require(entity, project, role)`` would let the call through (the UI shows
        its edit controls by it)."""
        try:
            self.require(entity, project, role)
        except (ArtifactNotFoundError, PermissionDeniedError):
            return False
        return True

    def _version(self, version_id: str, role: str = "read") -> VersionRecord:
        if not version_id.isalnum() or len(version_id) > 32:
            raise ValidationError(f"invalid version id {version_id[:40]!r}")
        try:
            rec = self._inner.get_version(version_id)
        except ArtifactNotFoundError:
            rec = None
        if rec is None or not self.can_read(rec.entity, rec.project):
            # The same answer as for a version that does not exist: nothing about others' projects.
            raise ArtifactNotFoundError(f"artifact version {version_id!r} not found")
        self.require(rec.entity, rec.project, role)
        return rec

    def _readable_versions(self, found: Iterable[VersionRecord]) -> list[VersionRecord]:
        return [v for v in found if self.can_read(v.entity, v.project)]

    def _readable_runs(self, found: Iterable[RunRecord]) -> list[RunRecord]:
        return [r for r in found if self.can_read(r.entity, r.project)]

    @property
    def blob_reader(self) -> BlobReader:
        """The rule of which blobs the key may read, for a statement to apply (a commit's)."""
        return BlobReader(self.who.uploader, self.who.readable)

    def readable_blobs(self, digests: Sequence[str], *, remember: bool = True) -> set[str]:
        """Those of ``digests`` the key may read (and so need not upload). Without
        ``remember`` the answer is not kept (a commit's whole manifest, checked once: up to
        200,000 remembered digests were ~30 MiB of a server's memory for nothing)."""
        with self._lock:
            known = {d for d in digests if d in self._known}
        rest = [d for d in digests if d not in known]
        if not rest:
            return known
        found = readable_blobs(self._b.catalog, self.who.uploader, self.who.readable, rest)
        if not remember:
            return known | found
        with self._lock:
            if len(self._known) + len(found) > _MAX_KNOWN:
                self._known.clear()
            self._known.update(found)
        return known | found

    def check_blob(self, digest: str) -> None:
        """Raise unless the key may read the blob (routes that stream it read the store then)."""
        if digest not in self.readable_blobs([digest]):
            # The same answer as for content that does not exist: nothing leaks.
            raise BlobNotFoundError(f"blob {digest} is not in any project this key may read")

    def _unreadable(self, digests: Sequence[str], *, remember: bool = True) -> tuple[str, ...]:
        have = self.readable_blobs(digests, remember=remember)
        return tuple(d for d in dict.fromkeys(digests) if d not in have)

    def require_upload(self) -> None:
        if not any(g.role in ("write", "admin") for g in self.who.grants):
            raise PermissionDeniedError(
                f"key of {self.who.user!r} may not write anywhere, so not upload"
            )

    def require_admin(self) -> None:
        self.who.require_admin()
