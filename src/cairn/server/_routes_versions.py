"""Routes: committing (single, distributed), querying and changing versions."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, Field

from cairn.core import (
    Change,
    validate_alias,
    validate_aliases,
    validate_artifact_name,
    validate_project,
    validate_tags,
    validate_type,
)
from cairn.core._records import RunRecord
from cairn.errors import BlobNotFoundError, ValidationError
from cairn.server._access import readable_blobs
from cairn.server._auth import Principal
from cairn.server._common import (
    B,
    Who,
    _description,
    _names,
    _role,
    _run_id,
    _text,
    _version_for,
    new_router,
)
from cairn.service import CommitRequest, CommitResult, FinishRequest, StageRequest
from cairn.service._maintenance import DEFAULT_GRACE_SECONDS
from cairn.service._wire import changes_from_json, collection_to_json, run_to_json, version_to_json

router = new_router()


# -- versions -------------------------------------------------------------------------------------


class CommitIn(BaseModel):
    name: str
    type: str
    changes: list[Any]
    base_version_id: str | None = None
    description: str | None = None
    metadata: dict[str, Any] = {}
    aliases: list[str] = []
    tags: list[str] = []
    run_id: str | None = None
    # [alias, version id or null]: refused with 409 unless the alias still names that version
    expect_alias: tuple[str, str | None] | None = None


class StageIn(BaseModel):
    name: str
    type: str
    distributed_id: str = Field(min_length=1, max_length=256)
    changes: list[Any]
    base_version_id: str | None = None
    description: str | None = None
    metadata: dict[str, Any] | None = None
    aliases: list[str] = []
    tags: list[str] = []
    run_id: str | None = None


def _commit_result(r: CommitResult) -> dict[str, Any]:
    return {
        "version": None if r.version is None else version_to_json(r.version),
        "created": r.created,
        "missing": list(r.missing),
    }


def _check_write(
    b: B, who: Principal, entity: str, project: str, body: CommitIn | StageIn
) -> tuple[str, str, Any]:
    entity, project = _names(entity, project)
    who.require(entity, project, "write")
    validate_artifact_name(body.name)
    validate_type(body.type)
    validate_aliases(body.aliases)
    validate_tags(body.tags)
    _description(body.description)
    if body.run_id is not None:
        _run_id(body.run_id)
    if body.base_version_id is not None:
        base = _version_for(b, who, body.base_version_id, "read")
        if (base.entity, base.project) != (entity, project):
            raise ValidationError(
                f"the base version {base.qualified_name} is in another project than"
                f" {entity}/{project}"
            )
    changes = changes_from_json(body.changes)
    digests = [e.digest for _, e in changes if e is not None and e.ref is None]
    have = readable_blobs(b.catalog, who, digests)
    missing = tuple(d for d in dict.fromkeys(digests) if d not in have)
    return entity, project, (changes, missing)


@router.post("/projects/{entity}/{project}/commit", summary="Commit a new version")
def commit(entity: str, project: str, body: CommitIn, who: Who, b: B) -> dict[str, Any]:
    entity, project, (changes, missing) = _check_write(b, who, entity, project, body)
    if missing:
        return _commit_result(CommitResult(None, False, missing))
    req = CommitRequest(
        entity=entity,
        project=project,
        name=body.name,
        type=body.type,
        changes=changes,
        base_version_id=body.base_version_id,
        description=body.description,
        metadata=body.metadata,
        aliases=body.aliases,
        tags=body.tags,
        run_id=body.run_id,
        expect_alias=body.expect_alias,
    )
    return _commit_result(b.service.commit(req))


@router.post("/projects/{entity}/{project}/stage", summary="Upsert into a distributed version")
def stage(entity: str, project: str, body: StageIn, who: Who, b: B) -> dict[str, Any]:
    entity, project, (changes, missing) = _check_write(b, who, entity, project, body)
    if missing:
        raise BlobNotFoundError(
            f"{len(missing)} blobs must be uploaded before staging, e.g. {missing[0]}"
        )
    req = StageRequest(**_distributed_fields(entity, project, body, changes))
    return version_to_json(b.service.stage(req))


def _distributed_fields(
    entity: str, project: str, body: StageIn, changes: list[Change]
) -> dict[str, Any]:
    """What an upsert and a finish send to the service alike (checked by ``_check_write``)."""
    return {
        "entity": entity,
        "project": project,
        "name": body.name,
        "type": body.type,
        "distributed_id": body.distributed_id,
        "changes": changes,
        "base_version_id": body.base_version_id,
        "run_id": body.run_id,
        "description": body.description,
        "metadata": body.metadata,
        "aliases": body.aliases,
    }


@router.post("/projects/{entity}/{project}/finish", summary="Commit a distributed version")
def finish(entity: str, project: str, body: StageIn, who: Who, b: B) -> dict[str, Any]:
    entity, project, (changes, missing) = _check_write(b, who, entity, project, body)
    if missing:
        return _commit_result(CommitResult(None, False, missing))
    req = FinishRequest(**_distributed_fields(entity, project, body, changes), tags=body.tags)
    return _commit_result(b.service.finish(req))


@router.delete("/versions/{version_id}/pending", summary="Discard a PENDING version")
def discard_pending(version_id: str, who: Who, b: B) -> dict[str, Any]:
    _version_for(b, who, version_id, "write")
    b.service.discard_pending(version_id)
    return {}


class CleanupIn(BaseModel):
    older_than_seconds: float = Field(ge=0)


@router.post("/admin/cleanup-pending", summary="Discard stale PENDING versions (server admins)")
def cleanup_pending(body: CleanupIn, who: Who, b: B) -> dict[str, Any]:
    who.require_admin()
    if not math.isfinite(body.older_than_seconds):
        raise ValidationError("older_than_seconds must be finite")
    return {"discarded": b.service.cleanup_pending(body.older_than_seconds)}


class GcIn(BaseModel):
    grace_seconds: float = Field(default=DEFAULT_GRACE_SECONDS, ge=0, le=10 * 365 * 86400)
    dry_run: bool = False


@router.post("/admin/gc", summary="Remove blobs no version uses (server admins)")
def admin_gc(body: GcIn, who: Who, b: B) -> dict[str, Any]:
    """The same collector as `cairn gc --db/--store`, under the lock every server shares."""
    who.require_admin()
    report = b.service.collect_garbage(grace_seconds=body.grace_seconds, dry_run=body.dry_run)
    swept = 0 if body.dry_run else b.transfers.sweep(b.config.upload_max_age)
    return {**report.to_json(), "abandoned_uploads_removed": swept}


@router.post("/admin/verify", summary="Re-hash every stored blob (server admins)")
def admin_verify(who: Who, b: B) -> dict[str, Any]:
    """The same check as `cairn verify --db/--store`: every committed version, every blob."""
    who.require_admin()
    return b.service.verify().to_json()


@router.get(
    "/projects/{entity}/{project}/artifacts/{name}/resolve", summary="The version name:label names"
)
def resolve(
    entity: str, project: str, name: str, who: Who, b: B, label: str | None = None
) -> dict[str, Any]:
    entity, project = _names(entity, project)
    who.require(entity, project, "read")
    validate_artifact_name(name)
    _text(label, "label", 128)
    return version_to_json(b.service.resolve(entity, project, name, label))


@router.get("/versions/{version_id}", summary="A version by id")
def get_version(version_id: str, who: Who, b: B) -> dict[str, Any]:
    return version_to_json(_version_for(b, who, version_id, "read"))


@router.get("/projects/{entity}/{project}/artifacts/{name}/versions", summary="Versions of a name")
def list_versions(
    entity: str, project: str, name: str, who: Who, b: B, include_pending: bool = False
) -> list[dict[str, Any]]:
    entity, project = _names(entity, project)
    who.require(entity, project, "read")
    validate_artifact_name(name)
    recs = b.service.list_versions(entity, project, name, include_pending=include_pending)
    return [version_to_json(r) for r in recs]


@router.get("/projects/{entity}/{project}/collections", summary="Artifact collections")
def list_collections(
    entity: str, project: str, who: Who, b: B, type: str | None = None
) -> list[dict[str, Any]]:
    entity, project = _names(entity, project)
    who.require(entity, project, "read")
    if type is not None:
        validate_type(type)
    return [collection_to_json(c) for c in b.service.list_collections(entity, project, type)]


@router.get("/projects/{entity}/{project}/types", summary="Artifact types in use")
def list_types(entity: str, project: str, who: Who, b: B) -> list[str]:
    entity, project = _names(entity, project)
    who.require(entity, project, "read")
    return b.service.list_types(entity, project)


@router.get("/projects", summary="Projects the key may read")
def list_projects(who: Who, b: B, entity: str | None = None) -> list[list[str]]:
    if entity is not None:
        validate_project(entity, "entity")
    return [[e, p] for e, p in b.service.list_projects(entity) if who.role_on(e, p) is not None]


class VersionUpdateIn(BaseModel):
    description: str | None = None
    metadata: dict[str, Any] | None = None
    aliases: list[str] | None = None
    tags: list[str] | None = None


@router.patch("/versions/{version_id}", summary="Change a version's description, metadata, ...")
def update_version(version_id: str, body: VersionUpdateIn, who: Who, b: B) -> dict[str, Any]:
    _version_for(b, who, version_id, "write")
    _description(body.description)
    aliases = None if body.aliases is None else validate_aliases(body.aliases)
    tags = None if body.tags is None else validate_tags(body.tags)
    rec = b.service.update_version(
        version_id, description=body.description, metadata=body.metadata, aliases=aliases, tags=tags
    )
    return version_to_json(rec)


@router.put("/versions/{version_id}/aliases/{alias}", summary="Point an alias at a version")
def add_alias(version_id: str, alias: str, who: Who, b: B) -> dict[str, Any]:
    _version_for(b, who, version_id, "write")
    return version_to_json(b.service.add_alias(version_id, validate_alias(alias)))


@router.delete("/versions/{version_id}/aliases/{alias}", summary="Remove an alias")
def remove_alias(version_id: str, alias: str, who: Who, b: B) -> dict[str, Any]:
    _version_for(b, who, version_id, "write")
    return version_to_json(b.service.remove_alias(version_id, validate_alias(alias)))


@router.delete("/versions/{version_id}", summary="Delete a version")
def delete_version(version_id: str, who: Who, b: B, delete_aliases: bool = False) -> dict[str, Any]:
    _version_for(b, who, version_id, "write")
    b.service.delete_version(version_id, delete_aliases=delete_aliases)
    return {}


class UseIn(BaseModel):
    entity: str
    project: str
    run_id: str


@router.post("/versions/{version_id}/users", summary="Record that a run used a version")
def use_version(version_id: str, body: UseIn, who: Who, b: B) -> dict[str, Any]:
    _version_for(b, who, version_id, "read")
    entity, project = _names(body.entity, body.project)
    who.require(entity, project, "write")
    run = RunRecord(id=_run_id(body.run_id), entity=entity, project=project, name="")
    b.service.use_version(version_id, run)
    return {}


@router.get("/versions/{version_id}/runs", summary="Runs that used, logged or wrote a version")
def version_runs(version_id: str, who: Who, b: B, role: str = "input") -> list[dict[str, Any]]:
    _version_for(b, who, version_id, "read")
    runs = b.service.version_runs(version_id, _role(role))
    return [run_to_json(r) for r in runs if who.role_on(r.entity, r.project) is not None]
