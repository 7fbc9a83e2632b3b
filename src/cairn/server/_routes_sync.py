"""Routes: copying versions between stores (``cairn sync``): export a collection's versions with
their lineage, import runs and versions as they were.

Importing needs ``write`` on the destination project (and on the project of every run it links);
a version keeps its number and creation time, as any writer may ask. The content must be readable
by the key (uploaded by its user or in a project it may read), exactly as for a commit.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, Field

from cairn.core import (
    RunRecord,
    check_digest,
    validate_aliases,
    validate_artifact_name,
    validate_tags,
    validate_type,
)
from cairn.errors import ValidationError
from cairn.server._common import Svc, _description, _names, _role, _run_id, new_router
from cairn.server._routes_runs import RunIn, run_of
from cairn.server._routes_versions import commit_result_to_json
from cairn.service import CommitResult, ImportRequest, VersionExport, export_to_json, run_to_json

router = new_router()

_MAX_LINKS = 100_000


@router.get(
    "/projects/{entity}/{project}/artifacts/{name}/export",
    summary="Every committed version of a name, with lineage (for cairn sync)",
    response_model=list[VersionExport],
)
def export_versions(entity: str, project: str, name: str, svc: Svc) -> list[dict[str, Any]]:
    entity, project = _names(entity, project)
    validate_artifact_name(name)
    return [export_to_json(x) for x in svc.export_versions(entity, project, name)]


class RunImportIn(RunIn):
    finished_at: float | None = None


@router.post(
    "/projects/{entity}/{project}/runs/import",
    summary="Copy a run from another store",
    response_model=RunRecord,
)
def import_run(entity: str, project: str, body: RunImportIn, svc: Svc) -> dict[str, Any]:
    entity, project = _names(entity, project)
    for value in (body.created_at, body.finished_at):
        if value is not None and not math.isfinite(value):
            raise ValidationError("run times must be finite numbers")
    return run_to_json(svc.import_run(run_of(entity, project, body, body.finished_at)))


class ImportIn(BaseModel):
    name: str
    type: str
    digest: str
    index: int | None = Field(default=None, ge=0, le=2**31 - 1)
    created_at: float
    description: str | None = None
    metadata: dict[str, Any] = {}
    aliases: list[str] = []
    tags: list[str] = []
    created_by: str | None = None
    runs: list[tuple[str, str, str, str]] = Field(default=[], max_length=_MAX_LINKS)
    base_version_id: str | None = None
    collection_description: str | None = None
    ttl_seconds: float | None = None
    link_of: tuple[str, str, str] | None = None


@router.post(
    "/projects/{entity}/{project}/import",
    summary="Copy a version from another store",
    response_model=CommitResult,
)
def import_version(entity: str, project: str, body: ImportIn, svc: Svc) -> dict[str, Any]:
    entity, project = _names(entity, project)
    validate_artifact_name(body.name)
    validate_type(body.type)
    aliases = validate_aliases(body.aliases)
    tags = validate_tags(body.tags)
    _description(body.description)
    _description(body.collection_description)
    digest = check_digest(body.digest)
    if not math.isfinite(body.created_at):
        raise ValidationError("created_at must be a finite number")
    if body.created_by is not None:
        _run_id(body.created_by)
    links = []
    for role, run_entity, run_project, run_id in body.runs:
        run_entity, run_project = _names(run_entity, run_project)
        links.append((_role(role), run_entity, run_project, _run_id(run_id)))
    link_of = None
    if body.link_of is not None:
        link_entity, link_project = _names(body.link_of[0], body.link_of[1])
        validate_artifact_name(body.link_of[2])
        link_of = (link_entity, link_project, body.link_of[2])
    req = ImportRequest(
        entity=entity,
        project=project,
        name=body.name,
        type=body.type,
        digest=digest,
        index=body.index,
        created_at=body.created_at,
        description=body.description,
        metadata=body.metadata,
        aliases=aliases,
        tags=tags,
        created_by=body.created_by,
        runs=links,
        base_version_id=body.base_version_id,
        collection_description=body.collection_description,
        ttl_seconds=body.ttl_seconds,
        link_of=link_of,
    )
    return commit_result_to_json(svc.import_version(req))
