"""Reads of a ``LocalService``: resolving ``name:alias`` to a version, listing projects,
collections and versions, and search."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cairn.core import LATEST, CollectionRecord, VersionRecord, parse_query
from cairn.errors import ArtifactNotFoundError
from cairn.service._search import SearchRequest, SearchResult
from cairn.service._store import Store, require_collection, require_project

if TYPE_CHECKING:
    from cairn.catalog import Tx


class Queries:
    """The read methods of ``Service`` over one store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def resolve(self, entity: str, project: str, name: str, label: str | None) -> VersionRecord:
        found = self._store.catalog.read_single(
            lambda tx: tx.versions.named(entity, project, name, label)
        )
        if found is not None:  # the common case, in one query
            return found

        def fn(tx: Tx) -> VersionRecord:  # why not (an error), or latest without its alias
            where = f"{entity}/{project}"
            pid, cid = tx.collections.locate(entity, project, name)
            if pid is None:
                raise ArtifactNotFoundError(
                    f"artifact {name}:{label or LATEST} not found: project {where} does not exist"
                )
            if cid is None:
                cid = tx.collections.require(pid, name, where)  # raises: not found
            vid = tx.versions.resolve(cid, label)
            if vid is None:
                raise ArtifactNotFoundError(
                    f"artifact {where}/{name} has no version or alias {label or LATEST!r}"
                )
            return tx.versions.record(vid)

        return self._store.catalog.read(fn)

    def get_version(self, version_id: str) -> VersionRecord:
        return self._store.catalog.read_single(lambda tx: tx.versions.record(version_id))

    def list_versions(
        self, entity: str, project: str, name: str, *, include_pending: bool = False
    ) -> list[VersionRecord]:
        def fn(tx: Tx) -> list[VersionRecord]:
            cid = require_collection(tx, entity, project, name)
            return tx.versions.records(tx.versions.ids(cid, include_pending=include_pending))

        return self._store.catalog.read(fn)

    def list_collections(
        self, entity: str, project: str, type_name: str | None = None
    ) -> list[CollectionRecord]:
        def fn(tx: Tx) -> list[CollectionRecord]:
            pid = tx.projects.id_of(entity, project, create=False)
            return [] if pid is None else tx.collections.records(pid, type_name)

        return self._store.catalog.read(fn)

    def get_collection(self, entity: str, project: str, name: str) -> CollectionRecord:
        def fn(tx: Tx) -> CollectionRecord:
            pid = require_project(tx, entity, project)
            found = tx.collections.records(pid, name=name)
            if not found:
                raise ArtifactNotFoundError(f"artifact {name!r} not found in {entity}/{project}")
            return found[0]

        return self._store.catalog.read(fn)

    def list_types(self, entity: str, project: str) -> list[str]:
        def fn(tx: Tx) -> list[str]:
            pid = tx.projects.id_of(entity, project, create=False)
            return [] if pid is None else tx.collections.types(pid)

        return self._store.catalog.read(fn)

    def list_projects(self, entity: str | None = None) -> list[tuple[str, str]]:
        return self._store.catalog.read(lambda tx: tx.projects.names(entity))

    def search(self, request: SearchRequest) -> SearchResult:
        request.check()
        query = parse_query(request.query)

        def fn(tx: Tx) -> SearchResult:
            scope = None
            if request.projects is not None:
                scope = tx.projects.ids_of(request.projects)
            collection_id = None
            if request.collection is not None:
                entity, project, name = request.collection
                pid, collection_id = tx.collections.locate(entity, project, name)
                if collection_id is None:
                    raise ArtifactNotFoundError(f"artifact {entity}/{project}/{name} not found")
                if scope is not None and pid not in scope:
                    scope = []
            hits = tx.search.find(
                query,
                project_ids=scope,
                collection_id=collection_id,
                kinds=request.kinds,
                sort=request.sort,
                descending=request.descending,
                offset=request.offset,
                limit=request.limit,
            )
            return SearchResult(
                projects=tuple(hits.projects),
                collections=tuple(hits.collections),
                versions=tuple(hits.versions),
                runs=tuple(hits.runs),
                totals=hits.totals,
            )

        return self._store.catalog.read(fn)
