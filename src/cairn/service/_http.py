"""HttpService: the Service protocol over a cairn server's REST API (``CAIRN_BASE_URL``).

Each call of the protocol is one request (or a few) through ``HttpClient``
(``_http_client.py``: connections kept alive, every request retried by one policy). Blobs go
through the transfers: ``Uploader`` (``_http_upload.py``: presence per batch, small blobs many per
request, large files in parallel resumable parts) and ``Fetcher`` (``_http_download.py``: many
blobs per request, presigned GETs, parallel ranges) into the ``DownloadCache``
(``_http_cache.py``: its layout and its cleanup). See docs/design.md ("Transfers").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import httpx

from cairn.core import (
    CollectionRecord,
    RegistryRecord,
    RunRecord,
    VersionRecord,
    validate_project,
)
from cairn.service._http_cache import DownloadCache
from cairn.service._http_client import (
    NOTICE_AFTER,
    RETRIES,
    RETRY_SECONDS,
    TRANSFER_THREADS,
    HttpClient,
    seg,
)
from cairn.service._http_download import Fetcher
from cairn.service._http_upload import Uploader
from cairn.service._protocol import (
    CommitRequest,
    CommitResult,
    FinishRequest,
    ImportRequest,
    StageRequest,
    VersionExport,
)
from cairn.service._search import SearchRequest, SearchResult
from cairn.service._wire import (
    changes_to_json,
    collection_from_json,
    export_from_json,
    import_to_json,
    key_id_of,
    registry_from_json,
    run_from_json,
    run_to_json,
    search_request_to_json,
    search_result_from_json,
    version_from_json,
)
from cairn.storage import BlobInfo


class HttpService:
    """A Service that calls a cairn server."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        cache_dir: str,
        *,
        transport: httpx.BaseTransport | None = None,
        retries: int = RETRIES,
        retry_seconds: float = RETRY_SECONDS,
        notice_after: float = NOTICE_AFTER,
        transfer_threads: int | None = None,
    ) -> None:
        """``transfer_threads``: parts (or batches, or ranges) in flight at once (the settings'
        ``CAIRN_TRANSFER_THREADS``; None: ``TRANSFER_THREADS``)."""
        self._client = HttpClient(
            base_url,
            api_key,
            transport=transport,
            retries=retries,
            retry_seconds=retry_seconds,
            notice_after=notice_after,
        )
        self.base_url = self._client.base_url
        self._cache = DownloadCache(cache_dir)
        threads = TRANSFER_THREADS if transfer_threads is None else transfer_threads
        self._uploads = Uploader(self._client, threads)
        self._fetcher = Fetcher(self._client, self._cache, threads)
        self._info: dict[str, Any] | None = None

    def _call(self, method: str, path: str, *, idempotent: bool = True, **kw: Any) -> Any:
        return self._client.call(method, path, idempotent=idempotent, **kw)

    def _whoami(self) -> dict[str, Any]:
        if self._info is None:
            self._info = dict(self._call("GET", "/whoami"))
        return self._info

    def _project(self, entity: str, project: str) -> str:
        validate_project(entity, "entity")
        validate_project(project)
        return f"/projects/{seg(entity)}/{seg(project)}"

    # -- identity ------------------------------------------------------------------------------

    @property
    def default_entity(self) -> str:
        return str(self._whoami()["entity"])

    @property
    def location(self) -> str:
        return self.base_url

    @property
    def is_local(self) -> bool:
        return False

    def close(self) -> None:
        self._client.close()

    # -- runs ----------------------------------------------------------------------------------

    def start_run(self, run: RunRecord) -> RunRecord:
        body = run_to_json(run)
        return run_from_json(
            self._call("POST", self._project(run.entity, run.project) + "/runs", json=body)
        )

    def finish_run(
        self, entity: str, project: str, run_id: str, state: str, config: Mapping[str, Any] | None
    ) -> None:
        path = f"{self._project(entity, project)}/runs/{seg(run_id)}/finish"
        self._call(
            "POST", path, json={"state": state, "config": None if config is None else dict(config)}
        )

    def get_run(self, entity: str, project: str, run_id: str) -> RunRecord:
        return run_from_json(
            self._call("GET", f"{self._project(entity, project)}/runs/{seg(run_id)}")
        )

    def run_versions(
        self, entity: str, project: str, run_id: str, role: str
    ) -> list[VersionRecord]:
        path = f"{self._project(entity, project)}/runs/{seg(run_id)}/versions"
        return [version_from_json(v) for v in self._call("GET", path, params={"role": role})]

    # -- blobs (the transfers) --------------------------------------------------------------

    def missing_blobs(self, digests: Sequence[str]) -> list[str]:
        return self._uploads.missing_blobs(digests)

    def store_blobs(
        self, items: Sequence[tuple[str, bytes]], *, known_missing: bool = False
    ) -> None:
        self._uploads.store_blobs(items, known_missing=known_missing)

    def store_file(self, path: str, *, link: bool = False) -> BlobInfo:
        return self._uploads.store_file(path)

    def store_blob_file(
        self, path: str, digest: str, size: int, *, sent: Callable[[], None] | None = None
    ) -> None:
        self._uploads.store_blob_file(path, digest, size, sent=sent)

    def prefetch_blobs(self, digests: Sequence[str]) -> None:
        self._fetcher.prefetch(digests)

    def read_blob(self, digest: str) -> bytes:
        return self._fetcher.read_blob(digest)

    def read_blobs(self, digests: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        return self._fetcher.read_blobs(digests)

    def blob_path(self, digest: str) -> str | None:
        return None  # blobs are on the server; download_blob fetches them

    def download_blob(self, digest: str, dest: str) -> None:
        self._fetcher.download_blob(digest, dest)

    def read_blob_range(self, digest: str, start: int, length: int) -> bytes:
        return self._fetcher.read_blob_range(digest, start, length)

    # -- versions ------------------------------------------------------------------------------

    @staticmethod
    def _result(d: Mapping[str, Any]) -> CommitResult:
        v = d.get("version")
        return CommitResult(
            None if v is None else version_from_json(v),
            bool(d.get("created")),
            tuple(d.get("missing") or ()),
        )

    def commit(self, request: CommitRequest) -> CommitResult:
        body: dict[str, Any] = {
            "name": request.name,
            "type": request.type,
            "changes": changes_to_json(request.changes),
            "base_version_id": request.base_version_id,
            "description": request.description,
            "metadata": dict(request.metadata),
            "aliases": list(request.aliases),
            "tags": list(request.tags),
            "run_id": request.run_id,
        }
        if request.expect_alias is not None:
            body["expect_alias"] = list(request.expect_alias)
        if request.manifest is not None:
            body["manifest"] = request.manifest
        path = self._project(request.entity, request.project) + "/commit"
        return self._result(self._call("POST", path, json=body))

    def _stage_body(self, request: StageRequest | FinishRequest) -> dict[str, Any]:
        return {
            "name": request.name,
            "type": request.type,
            "distributed_id": request.distributed_id,
            "changes": changes_to_json(request.changes),
            "base_version_id": request.base_version_id,
            "run_id": request.run_id,
            "description": request.description,
            "metadata": None if request.metadata is None else dict(request.metadata),
            "aliases": list(request.aliases),
        }

    def stage(self, request: StageRequest) -> VersionRecord:
        path = self._project(request.entity, request.project) + "/stage"
        return version_from_json(self._call("POST", path, json=self._stage_body(request)))

    def finish(self, request: FinishRequest) -> CommitResult:
        body = {**self._stage_body(request), "tags": list(request.tags)}
        path = self._project(request.entity, request.project) + "/finish"
        return self._result(self._call("POST", path, json=body))

    def discard_pending(self, version_id: str) -> None:
        self._call("DELETE", f"/versions/{seg(version_id)}/pending")

    def cleanup_pending(self, older_than_seconds: float) -> int:
        body = {"older_than_seconds": older_than_seconds}
        return int(self._call("POST", "/admin/cleanup-pending", json=body)["discarded"])

    def resolve(self, entity: str, project: str, name: str, label: str | None) -> VersionRecord:
        path = f"{self._project(entity, project)}/artifacts/{seg(name)}/resolve"
        params = {} if label is None else {"label": label}
        return version_from_json(self._call("GET", path, params=params))

    def get_version(self, version_id: str) -> VersionRecord:
        return version_from_json(self._call("GET", f"/versions/{seg(version_id)}"))

    def list_versions(
        self, entity: str, project: str, name: str, *, include_pending: bool = False
    ) -> list[VersionRecord]:
        path = f"{self._project(entity, project)}/artifacts/{seg(name)}/versions"
        params = {"include_pending": "true" if include_pending else "false"}
        return [version_from_json(v) for v in self._call("GET", path, params=params)]

    def list_collections(
        self, entity: str, project: str, type_name: str | None = None
    ) -> list[CollectionRecord]:
        params = {} if type_name is None else {"type": type_name}
        rows = self._call("GET", self._project(entity, project) + "/collections", params=params)
        return [collection_from_json(c) for c in rows]

    def list_types(self, entity: str, project: str) -> list[str]:
        return [str(t) for t in self._call("GET", self._project(entity, project) + "/types")]

    def list_projects(self, entity: str | None = None) -> list[tuple[str, str]]:
        params = {} if entity is None else {"entity": entity}
        return [(str(e), str(p)) for e, p in self._call("GET", "/projects", params=params)]

    def update_version(
        self,
        version_id: str,
        *,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        aliases: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
    ) -> VersionRecord:
        body = {
            "description": description,
            "metadata": None if metadata is None else dict(metadata),
            "aliases": None if aliases is None else list(aliases),
            "tags": None if tags is None else list(tags),
        }
        return version_from_json(self._call("PATCH", f"/versions/{seg(version_id)}", json=body))

    def add_alias(self, version_id: str, alias: str) -> VersionRecord:
        path = f"/versions/{seg(version_id)}/aliases/{seg(alias)}"
        return version_from_json(self._call("PUT", path))

    def remove_alias(self, version_id: str, alias: str) -> VersionRecord:
        path = f"/versions/{seg(version_id)}/aliases/{seg(alias)}"
        return version_from_json(self._call("DELETE", path))

    def delete_version(self, version_id: str, *, delete_aliases: bool = False) -> None:
        params = {"delete_aliases": "true" if delete_aliases else "false"}
        self._call("DELETE", f"/versions/{seg(version_id)}", params=params)

    def use_version(self, version_id: str, run: RunRecord) -> None:
        body = {"entity": run.entity, "project": run.project, "run_id": run.id}
        self._call("POST", f"/versions/{seg(version_id)}/users", json=body)

    def version_runs(self, version_id: str, role: str) -> list[RunRecord]:
        rows = self._call("GET", f"/versions/{seg(version_id)}/runs", params={"role": role})
        return [run_from_json(r) for r in rows]

    def search(self, request: SearchRequest) -> SearchResult:
        return search_result_from_json(
            self._call("POST", "/search", json=search_request_to_json(request.check()))
        )

    # -- runs of a project (W&B's Api.runs, Run.delete) --

    def list_runs(self, entity: str, project: str) -> list[RunRecord]:
        return [
            run_from_json(r) for r in self._call("GET", self._project(entity, project) + "/runs")
        ]

    def delete_run(
        self, entity: str, project: str, run_id: str, *, delete_artifacts: bool = False
    ) -> None:
        params = {"delete_artifacts": "true" if delete_artifacts else "false"}
        self._call("DELETE", f"{self._project(entity, project)}/runs/{seg(run_id)}", params=params)

    # -- a run's history and summary (W&B's run.log, run.summary) --

    def log_history(
        self, entity: str, project: str, run_id: str, rows: Sequence[str], summary: str | None
    ) -> None:
        path = f"{self._project(entity, project)}/runs/{seg(run_id)}/history"
        self._call("POST", path, json={"rows": list(rows), "summary": summary})

    def run_history(
        self,
        entity: str,
        project: str,
        run_id: str,
        *,
        min_step: int | None = None,
        max_step: int | None = None,
        limit: int | None = None,
    ) -> list[str]:
        given = {"min_step": min_step, "max_step": max_step, "limit": limit}
        params = {k: str(v) for k, v in given.items() if v is not None}
        path = f"{self._project(entity, project)}/runs/{seg(run_id)}/history"
        return [str(r) for r in self._call("GET", path, params=params)["rows"]]

    def run_summary(self, entity: str, project: str, run_id: str) -> str:
        path = f"{self._project(entity, project)}/runs/{seg(run_id)}/summary"
        return str(self._call("GET", path)["summary"])

    def set_ttl(self, version_id: str, ttl_seconds: float | None) -> VersionRecord:
        body = {"ttl_seconds": ttl_seconds}
        return version_from_json(self._call("PUT", f"/versions/{seg(version_id)}/ttl", json=body))

    # -- registry links and registries (W&B's link_artifact, Registry) --

    def link_version(
        self,
        source_version_id: str,
        entity: str,
        project: str,
        name: str,
        aliases: Sequence[str] = (),
    ) -> VersionRecord:
        body = {"entity": entity, "project": project, "name": name, "aliases": list(aliases)}
        path = f"/versions/{seg(source_version_id)}/links"
        return version_from_json(self._call("POST", path, json=body))

    def unlink_version(self, version_id: str) -> None:
        self._call("DELETE", f"/versions/{seg(version_id)}/link")

    def version_links(self, version_id: str) -> list[VersionRecord]:
        rows = self._call("GET", f"/versions/{seg(version_id)}/links")
        return [version_from_json(v) for v in rows]

    def create_registry(
        self,
        name: str,
        *,
        description: str | None = None,
        visibility: str = "organization",
        artifact_types: Sequence[str] = (),
    ) -> RegistryRecord:
        body = {
            "name": name,
            "description": description,
            "visibility": visibility,
            "artifact_types": list(artifact_types),
        }
        return registry_from_json(self._call("POST", "/registries", json=body))

    def list_registries(self) -> list[RegistryRecord]:
        return [registry_from_json(r) for r in self._call("GET", "/registries")]

    # -- collections (W&B's ArtifactCollection) --

    def get_collection(self, entity: str, project: str, name: str) -> CollectionRecord:
        path = f"{self._project(entity, project)}/collections/{seg(name)}"
        return collection_from_json(self._call("GET", path))

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
        path = f"{self._project(entity, project)}/collections/{seg(name)}"
        body = {
            "name": new_name,
            "description": description,
            "tags": None if tags is None else list(tags),
        }
        return collection_from_json(self._call("PATCH", path, json=body))

    def delete_collection(self, entity: str, project: str, name: str) -> None:
        self._call("DELETE", f"{self._project(entity, project)}/collections/{seg(name)}")

    # -- copying between stores (cairn sync) ----------------------------------------------------

    def export_versions(self, entity: str, project: str, name: str) -> list[VersionExport]:
        path = f"{self._project(entity, project)}/artifacts/{seg(name)}/export"
        return [export_from_json(x) for x in self._call("GET", path)]

    def import_run(self, run: RunRecord) -> RunRecord:
        path = self._project(run.entity, run.project) + "/runs/import"
        return run_from_json(self._call("POST", path, json=run_to_json(run)))

    def import_version(self, request: ImportRequest) -> CommitResult:
        path = self._project(request.entity, request.project) + "/import"
        return self._result(self._call("POST", path, json=import_to_json(request)))

    # -- API keys (server admins; not part of the Service protocol) ----------------------------

    def create_key(self, user: str, project: str | None, role: str) -> dict[str, Any]:
        body = {"user": user, "project": project, "role": role}
        # Not idempotent: a retry after the request arrived could make a second key.
        return dict(self._call("POST", "/keys", json=body, idempotent=False))

    def revoke_key(self, key_id: str) -> None:
        """Revoke a key by id (or by the whole key: only its id is sent)."""
        self._call("DELETE", f"/keys/{key_id_of(key_id)}")

    def list_keys(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/keys"))
