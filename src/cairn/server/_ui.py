"""The web UI inside ``cairn server``, behind the same API keys as the REST API.

``ServerUiBackend`` is the server's side of the UI contract (``cairn.ui.UiBackend``): a browser
signs in with an API key (kept in an HTTP-only cookie by the UI), and every page reads through a
``KeyScopedService``, which lets through only what that key may read, exactly as the REST routes
do: projects by grant, blobs by ``readable_blobs`` (so a page never shows content of a project the
key cannot read), and alias changes only with write access.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from cairn.core._records import CollectionRecord, RegistryRecord, RunRecord, VersionRecord
from cairn.errors import BlobNotFoundError, PermissionDeniedError
from cairn.server._access import readable_blobs
from cairn.server._auth import Principal as KeyPrincipal
from cairn.server._backend import Backend
from cairn.server._log import key_refused
from cairn.server._routes_search import scoped_search
from cairn.service import (
    CommitRequest,
    CommitResult,
    FinishRequest,
    ImportRequest,
    SearchRequest,
    SearchResult,
    StageRequest,
    VersionExport,
)
from cairn.storage import BlobInfo
from cairn.ui import Principal, create_ui_app

_MAX_KNOWN = 200_000  # digests remembered as readable, per key


class KeyScopedService:
    """A Service over the server's LocalService that sees and changes only what one key may.

    It implements the reads the UI uses and alias changes; everything that creates versions is
    refused (the UI never does it; clients use the REST API)."""

    def __init__(self, backend: Backend, who: KeyPrincipal) -> None:
        self._b = backend
        self._inner = backend.service
        self._who = who
        self._readable: set[str] = set()
        self._lock = threading.Lock()

    # -- identity --

    @property
    def default_entity(self) -> str:
        return self._who.user

    @property
    def location(self) -> str:
        return self._inner.location

    @property
    def is_local(self) -> bool:
        return True

    def close(self) -> None:
        """The server's service outlives any key's view of it."""

    # -- checks --

    def _may(self, entity: str, project: str, role: str = "read") -> None:
        self._who.require(entity, project, role)

    def _can_read(self, entity: str, project: str) -> bool:
        return self._who.role_on(entity, project) is not None

    def _version(self, version_id: str, role: str = "read") -> VersionRecord:
        rec = self._inner.get_version(version_id)
        self._may(rec.entity, rec.project, role)
        return rec

    def _blob(self, digest: str) -> None:
        with self._lock:
            if digest in self._readable:
                return
        if digest not in readable_blobs(self._b.catalog, self._who, [digest]):
            # The same answer as for content that does not exist: nothing leaks.
            raise BlobNotFoundError(f"blob {digest} is not in the store")
        with self._lock:
            if len(self._readable) >= _MAX_KNOWN:
                self._readable.clear()
            self._readable.add(digest)

    # -- runs --

    def get_run(self, entity: str, project: str, run_id: str) -> RunRecord:
        self._may(entity, project)
        return self._inner.get_run(entity, project, run_id)

    def run_versions(
        self, entity: str, project: str, run_id: str, role: str
    ) -> list[VersionRecord]:
        self._may(entity, project)
        found = self._inner.run_versions(entity, project, run_id, role)
        return [v for v in found if self._can_read(v.entity, v.project)]

    def version_runs(self, version_id: str, role: str) -> list[RunRecord]:
        self._version(version_id)
        found = self._inner.version_runs(version_id, role)
        return [r for r in found if self._can_read(r.entity, r.project)]

    def start_run(self, run: RunRecord) -> RunRecord:
        raise PermissionDeniedError("runs are started through the REST API, not the web UI")

    def finish_run(
        self, entity: str, project: str, run_id: str, state: str, config: Mapping[str, Any] | None
    ) -> None:
        raise PermissionDeniedError("runs are finished through the REST API, not the web UI")

    # -- blobs --

    def read_blob(self, digest: str) -> bytes:
        self._blob(digest)
        return self._inner.read_blob(digest)

    def read_blobs(self, digests: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        for digest in digests:
            yield digest, self.read_blob(digest)

    def blob_path(self, digest: str) -> str | None:
        return None  # the UI downloads through download_blob (which checks access)

    def download_blob(self, digest: str, dest: str) -> None:
        self._blob(digest)
        self._inner.download_blob(digest, dest)

    def read_blob_range(self, digest: str, start: int, length: int) -> bytes:
        self._blob(digest)
        return self._inner.read_blob_range(digest, start, length)

    def prefetch_blobs(self, digests: Sequence[str]) -> None:
        """Nothing to prefetch: the blobs are local to the server."""

    def missing_blobs(self, digests: Sequence[str]) -> list[str]:
        allowed = readable_blobs(self._b.catalog, self._who, digests)
        return [d for d in dict.fromkeys(digests) if d not in allowed]

    def store_blobs(self, items: Sequence[tuple[str, bytes]]) -> None:
        raise PermissionDeniedError("content is uploaded through the REST API, not the web UI")

    def store_file(self, path: str, *, link: bool = False) -> BlobInfo:
        raise PermissionDeniedError("content is uploaded through the REST API, not the web UI")

    def store_blob_file(self, path: str, digest: str, size: int) -> None:
        raise PermissionDeniedError("content is uploaded through the REST API, not the web UI")

    # -- versions: reads --

    def resolve(self, entity: str, project: str, name: str, label: str | None) -> VersionRecord:
        self._may(entity, project)
        return self._inner.resolve(entity, project, name, label)

    def get_version(self, version_id: str) -> VersionRecord:
        return self._version(version_id)

    def list_versions(
        self, entity: str, project: str, name: str, *, include_pending: bool = False
    ) -> list[VersionRecord]:
        self._may(entity, project)
        return self._inner.list_versions(entity, project, name, include_pending=include_pending)

    def list_collections(
        self, entity: str, project: str, type_name: str | None = None
    ) -> list[CollectionRecord]:
        self._may(entity, project)
        return self._inner.list_collections(entity, project, type_name)

    def list_types(self, entity: str, project: str) -> list[str]:
        self._may(entity, project)
        return self._inner.list_types(entity, project)

    def list_projects(self, entity: str | None = None) -> list[tuple[str, str]]:
        return [p for p in self._inner.list_projects(entity) if self._can_read(*p)]

    def search(self, request: SearchRequest) -> SearchResult:
        return scoped_search(self._inner, self._who, request)

    # -- versions: changes --

    def add_alias(self, version_id: str, alias: str) -> VersionRecord:
        self._version(version_id, "write")
        return self._inner.add_alias(version_id, alias)

    def remove_alias(self, version_id: str, alias: str) -> VersionRecord:
        self._version(version_id, "write")
        return self._inner.remove_alias(version_id, alias)

    def update_version(
        self,
        version_id: str,
        *,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        aliases: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
    ) -> VersionRecord:
        self._version(version_id, "write")
        return self._inner.update_version(
            version_id, description=description, metadata=metadata, aliases=aliases, tags=tags
        )

    def delete_version(self, version_id: str, *, delete_aliases: bool = False) -> None:
        self._version(version_id, "write")
        self._inner.delete_version(version_id, delete_aliases=delete_aliases)

    def use_version(self, version_id: str, run: RunRecord) -> None:
        raise PermissionDeniedError("usage is recorded through the REST API, not the web UI")

    def commit(self, request: CommitRequest) -> CommitResult:
        raise PermissionDeniedError("versions are logged through the REST API, not the web UI")

    def stage(self, request: StageRequest) -> VersionRecord:
        raise PermissionDeniedError("versions are logged through the REST API, not the web UI")

    def finish(self, request: FinishRequest) -> CommitResult:
        raise PermissionDeniedError("versions are logged through the REST API, not the web UI")

    def export_versions(self, entity: str, project: str, name: str) -> list[VersionExport]:
        raise PermissionDeniedError("stores are copied through the REST API, not the web UI")

    def import_run(self, run: RunRecord) -> RunRecord:
        raise PermissionDeniedError("stores are copied through the REST API, not the web UI")

    def import_version(self, request: ImportRequest) -> CommitResult:
        raise PermissionDeniedError("stores are copied through the REST API, not the web UI")

    def discard_pending(self, version_id: str) -> None:
        self._version(version_id, "write")
        self._inner.discard_pending(version_id)

    def cleanup_pending(self, older_than_seconds: float) -> int:
        self._who.require_admin()
        return self._inner.cleanup_pending(older_than_seconds)

    # -- runs of a project (W&B's Api.runs, Run.delete) --

    def list_runs(self, entity: str, project: str) -> list[RunRecord]:
        self._may(entity, project)
        return self._inner.list_runs(entity, project)

    def delete_run(
        self, entity: str, project: str, run_id: str, *, delete_artifacts: bool = False
    ) -> None:
        self._may(entity, project, "write")
        self._inner.delete_run(entity, project, run_id, delete_artifacts=delete_artifacts)

    def set_ttl(self, version_id: str, ttl_seconds: float | None) -> VersionRecord:
        self._version(version_id, "write")
        return self._inner.set_ttl(version_id, ttl_seconds)

    # -- registry links and registries (W&B's link_artifact, Registry) --

    def link_version(
        self,
        source_version_id: str,
        entity: str,
        project: str,
        name: str,
        aliases: Sequence[str] = (),
    ) -> VersionRecord:
        self._version(source_version_id)
        self._may(entity, project, "write")
        return self._inner.link_version(source_version_id, entity, project, name, aliases)

    def unlink_version(self, version_id: str) -> None:
        self._version(version_id, "write")
        self._inner.unlink_version(version_id)

    def version_links(self, version_id: str) -> list[VersionRecord]:
        self._version(version_id)
        found = self._inner.version_links(version_id)
        return [v for v in found if self._can_read(v.entity, v.project)]

    def create_registry(
        self,
        name: str,
        *,
        description: str | None = None,
        visibility: str = "organization",
        artifact_types: Sequence[str] = (),
    ) -> RegistryRecord:
        raise PermissionDeniedError("registries are created through the REST API, not the web UI")

    def list_registries(self) -> list[RegistryRecord]:
        found = self._inner.list_registries()
        return [r for r in found if self._can_read(r.entity, r.project)]

    # -- collections (W&B's ArtifactCollection) --

    def get_collection(self, entity: str, project: str, name: str) -> CollectionRecord:
        self._may(entity, project)
        return self._inner.get_collection(entity, project, name)

    def update_collection(
        self,
        entity: str,
        project: str,
        name: str,
        *,
        new_name: str | None = None,
        description: str | None = None,
        tags: Sequence[str] | None = None,
    ) -> CollectionRecord:
        self._may(entity, project, "write")
        return self._inner.update_collection(
            entity, project, name, new_name=new_name, description=description, tags=tags
        )

    def delete_collection(self, entity: str, project: str, name: str) -> None:
        self._may(entity, project, "write")
        self._inner.delete_collection(entity, project, name)


class ServerUiBackend:
    """``cairn.ui.UiBackend`` over the server's API keys: sign in with a key; see what it sees."""

    def __init__(self, backend: Backend) -> None:
        self._b = backend
        self._principals: dict[str, KeyPrincipal] = {}
        self._services: dict[str, KeyScopedService] = {}
        self._lock = threading.Lock()

    @property
    def needs_login(self) -> bool:
        return True

    def anonymous(self) -> Principal | None:
        return None

    def authenticate(self, api_key: str) -> Principal | None:
        who = self._b.keys.check(api_key)  # cached by the key ring; a revoked key fails in ~2 s
        if who is None:
            key_refused("/login", api_key, "unknown, malformed or revoked")
            return None
        with self._lock:
            self._principals[who.key_id] = who
        return Principal(id=who.key_id, name=who.user)

    def _key(self, principal: Principal) -> KeyPrincipal:
        with self._lock:
            who = self._principals.get(principal.id)
        if who is None:
            raise PermissionDeniedError("sign in again: this session's key is not known")
        return who

    def service_for(self, principal: Principal) -> KeyScopedService:
        who = self._key(principal)
        with self._lock:
            svc = self._services.get(who.key_id)
            if svc is None or svc._who != who:
                svc = self._services[who.key_id] = KeyScopedService(self._b, who)
            return svc

    def can_write(self, principal: Principal, entity: str, project: str) -> bool:
        role = self._key(principal).role_on(entity, project)
        return role in ("write", "admin")


def ui_secret(backend: Backend) -> bytes:
    """The secret that signs the UI's CSRF tokens; the same in every server process of one
    deployment (``CAIRN_SERVER_SECRET``, else derived from its configuration)."""
    explicit = os.environ.get("CAIRN_SERVER_SECRET")
    if explicit:
        return explicit.encode()
    c = backend.config
    basis = f"cairn-ui\0{c.db}\0{c.store}\0{c.admin_key or ''}"
    return hashlib.sha256(basis.encode()).digest()


def mount_ui(app: Any, backend: Backend) -> None:
    """Serve the web UI at ``/`` (after the API routes, so ``/api/v1`` keeps precedence)."""
    secure = os.environ.get("CAIRN_SERVER_INSECURE_COOKIES", "").lower() not in ("1", "true", "yes")
    app.mount(
        "/",
        create_ui_app(ServerUiBackend(backend), secret=ui_secret(backend), secure_cookies=secure),
    )
