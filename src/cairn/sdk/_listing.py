"""Listings that a cold command answers without opening the store when it can (issue 13).

``cairn artifact ls`` of an embedded store reads the catalog with ``sqlite3`` when its schema is
current (``cairn.service.embedded_collections``), so it does not import SQLAlchemy; otherwise,
and for a server or the store of an active run, it goes through the Service as every other
operation. Loads none of the staging or download code."""

from __future__ import annotations

from typing import Any

from cairn.core import CollectionRecord, iso_time
from cairn.sdk._resolver import NameResolver, split_project
from cairn.sdk._session import run_session
from cairn.sdk._settings import Settings


def collection_json(rec: CollectionRecord) -> dict[str, Any]:
    return {
        "entity": rec.entity,
        "project": rec.project,
        "name": rec.name,
        "type": rec.type,
        "description": rec.description,
        "latest_version": None if rec.latest_index is None else f"v{rec.latest_index}",
        "versions": rec.version_count,
        "size": rec.latest_size,
        "updated_at": iso_time(rec.updated_at),
    }


def list_collections(project: str, type_name: str | None = None) -> list[CollectionRecord]:
    """The collections of ``[entity/]project`` (of one type if given), by type and name."""
    settings = Settings.from_env()
    if run_session() is None and not settings.base_url:
        from cairn.service import embedded_collections, local_user

        entity, proj = split_project(project, settings.entity or local_user(), settings.project)
        quick = embedded_collections(settings.dir, entity, proj, type_name)
        if quick is not None:
            return quick
    scope = NameResolver()
    entity, proj = scope.project_path(project)
    return scope.service.list_collections(entity, proj, type_name)
