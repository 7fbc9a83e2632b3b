"""Routes for W&B's public API: collections (rename, description, tags, delete) and the runs of
a project (list, delete)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from cairn.core import (
    REGISTRY_PREFIX,
    CollectionRecord,
    RegistryRecord,
    RunRecord,
    VersionRecord,
    validate_aliases,
    validate_artifact_name,
    validate_project,
    validate_tags,
    validate_type,
)
from cairn.errors import ValidationError
from cairn.server._common import Svc, _description, _names, _run_id, new_router
from cairn.service import (
    collection_to_json,
    registry_to_json,
    run_to_json,
    version_to_json,
)

router = new_router()


def _collection_path(entity: str, project: str, name: str) -> tuple[str, str, str]:
    entity, project = _names(entity, project)
    return entity, project, validate_artifact_name(name)


@router.get(
    "/projects/{entity}/{project}/collections/{name}",
    summary="One artifact collection",
    response_model=CollectionRecord,
)
def get_collection(entity: str, project: str, name: str, svc: Svc) -> dict[str, Any]:
    entity, project, name = _collection_path(entity, project, name)
    return collection_to_json(svc.get_collection(entity, project, name))


class CollectionUpdateIn(BaseModel):
    name: str | None = None
    description: str | None = None
    tags: list[str] | None = None


@router.patch(
    "/projects/{entity}/{project}/collections/{name}",
    summary="Rename a collection, change its description or tags",
    response_model=CollectionRecord,
)
def update_collection(
    entity: str, project: str, name: str, body: CollectionUpdateIn, svc: Svc
) -> dict[str, Any]:
    entity, project, name = _collection_path(entity, project, name)
    new_name = None if body.name is None else validate_artifact_name(body.name)
    tags = None if body.tags is None else validate_tags(body.tags)
    rec = svc.update_collection(
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
def delete_collection(entity: str, project: str, name: str, svc: Svc) -> dict[str, Any]:
    entity, project, name = _collection_path(entity, project, name)
    svc.delete_collection(entity, project, name)
    return {}


@router.get(
    "/projects/{entity}/{project}/runs",
    summary="The runs of a project, oldest first",
    response_model=list[RunRecord],
)
def list_runs(entity: str, project: str, svc: Svc) -> list[dict[str, Any]]:
    entity, project = _names(entity, project)
    return [run_to_json(r) for r in svc.list_runs(entity, project)]


@router.delete("/projects/{entity}/{project}/runs/{run_id}", summary="Delete a run")
def delete_run(
    entity: str, project: str, run_id: str, svc: Svc, delete_artifacts: bool = False
) -> dict[str, Any]:
    entity, project = _names(entity, project)
    svc.delete_run(entity, project, _run_id(run_id), delete_artifacts=delete_artifacts)
    return {}


class TtlIn(BaseModel):
    ttl_seconds: float | None = None


@router.put(
    "/versions/{version_id}/ttl",
    summary="Set a version's time to live",
    response_model=VersionRecord,
)
def set_ttl(version_id: str, body: TtlIn, svc: Svc) -> dict[str, Any]:
    return version_to_json(svc.set_ttl(version_id, body.ttl_seconds))


# -- registry links and registries -----------------------------------------------------------------


class LinkIn(BaseModel):
    entity: str
    project: str
    name: str
    aliases: list[str] = []


@router.post(
    "/versions/{version_id}/links",
    summary="Link a version into a collection",
    response_model=VersionRecord,
)
def link_version(version_id: str, body: LinkIn, svc: Svc) -> dict[str, Any]:
    entity, project = _names(body.entity, body.project)
    rec = svc.link_version(
        version_id,
        entity,
        project,
        validate_artifact_name(body.name),
        validate_aliases(body.aliases),
    )
    return version_to_json(rec)


@router.delete("/versions/{version_id}/link", summary="Remove a link")
def unlink_version(version_id: str, svc: Svc) -> dict[str, Any]:
    svc.unlink_version(version_id)
    return {}


@router.get(
    "/versions/{version_id}/links",
    summary="Where a version is linked",
    response_model=list[VersionRecord],
)
def version_links(version_id: str, svc: Svc) -> list[dict[str, Any]]:
    return [version_to_json(v) for v in svc.version_links(version_id)]


class RegistryIn(BaseModel):
    name: str
    description: str | None = None
    visibility: str = "organization"
    artifact_types: list[str] = []


@router.post("/registries", summary="Create a registry", response_model=RegistryRecord)
def create_registry(body: RegistryIn, svc: Svc) -> dict[str, Any]:
    name = validate_artifact_name(body.name)
    validate_project(REGISTRY_PREFIX + name)
    if body.visibility not in ("organization", "restricted"):
        raise ValidationError("visibility must be 'organization' or 'restricted'")
    rec = svc.create_registry(
        name,
        description=_description(body.description),
        visibility=body.visibility,
        artifact_types=[validate_type(t) for t in body.artifact_types],
    )
    return registry_to_json(rec)


@router.get(
    "/registries", summary="The registries the key may read", response_model=list[RegistryRecord]
)
def list_registries(svc: Svc) -> list[dict[str, Any]]:
    return [registry_to_json(r) for r in svc.list_registries()]
