"""Routes for W&B's public API: collections (rename, description, tags, delete) and the runs of
a project (list, delete)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from cairn.core import validate_artifact_name, validate_tags
from cairn.server._common import B, Who, _description, _names, _run_id, _version_for, new_router
from cairn.service._wire import collection_to_json, run_to_json, version_to_json

router = new_router()


def _collection_path(entity: str, project: str, name: str) -> tuple[str, str, str]:
    entity, project = _names(entity, project)
    return entity, project, validate_artifact_name(name)


@router.get("/projects/{entity}/{project}/collections/{name}", summary="One artifact collection")
def get_collection(entity: str, project: str, name: str, who: Who, b: B) -> dict[str, Any]:
    entity, project, name = _collection_path(entity, project, name)
    who.require(entity, project, "read")
    return collection_to_json(b.service.get_collection(entity, project, name))


class CollectionUpdateIn(BaseModel):
    name: str | None = None
    description: str | None = None
    tags: list[str] | None = None


@router.patch(
    "/projects/{entity}/{project}/collections/{name}",
    summary="Rename a collection, change its description or tags",
)
def update_collection(
    entity: str, project: str, name: str, body: CollectionUpdateIn, who: Who, b: B
) -> dict[str, Any]:
    entity, project, name = _collection_path(entity, project, name)
    who.require(entity, project, "write")
    new_name = None if body.name is None else validate_artifact_name(body.name)
    tags = None if body.tags is None else validate_tags(body.tags)
    rec = b.service.update_collection(
        entity,
        project,
        name,
        new_name=new_name,
        description=_description(body.description),
        tags=tags,
    )
    return collection_to_json(rec)


@router.delete(
    "/projects/{entity}/{project}/collections/{name}",
    summary="Delete a collection and all its versions",
)
def delete_collection(entity: str, project: str, name: str, who: Who, b: B) -> dict[str, Any]:
    entity, project, name = _collection_path(entity, project, name)
    who.require(entity, project, "write")
    b.service.delete_collection(entity, project, name)
    return {}


@router.get("/projects/{entity}/{project}/runs", summary="The runs of a project, oldest first")
def list_runs(entity: str, project: str, who: Who, b: B) -> list[dict[str, Any]]:
    entity, project = _names(entity, project)
    who.require(entity, project, "read")
    return [run_to_json(r) for r in b.service.list_runs(entity, project)]


@router.delete("/projects/{entity}/{project}/runs/{run_id}", summary="Delete a run")
def delete_run(
    entity: str, project: str, run_id: str, who: Who, b: B, delete_artifacts: bool = False
) -> dict[str, Any]:
    entity, project = _names(entity, project)
    who.require(entity, project, "write")
    b.service.delete_run(entity, project, _run_id(run_id), delete_artifacts=delete_artifacts)
    return {}


class TtlIn(BaseModel):
    ttl_seconds: float | None = None


@router.put("/versions/{version_id}/ttl", summary="Set a version's time to live")
def set_ttl(version_id: str, body: TtlIn, who: Who, b: B) -> dict[str, Any]:
    _version_for(b, who, version_id, "write")
    return version_to_json(b.service.set_ttl(version_id, body.ttl_seconds))
