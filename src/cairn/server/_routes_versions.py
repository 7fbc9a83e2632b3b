"""Routes: committing (single, distributed), querying and changing versions."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from pydantic import ValidationError as PydanticError

from cairn.core import (
    Change,
    CollectionRecord,
    RunRecord,
    VersionRecord,
    check_digest,
    to_json,
    validate_alias,
    validate_aliases,
    validate_artifact_name,
    validate_project,
    validate_tags,
    validate_type,
)
from cairn.errors import ValidationError
from cairn.server._common import Svc, _description, _names, _role, _run_id, _text, new_router
from cairn.server._streamed_changes import StreamedChanges, streamed_body
from cairn.service import (
    DEFAULT_GRACE_SECONDS,
    CommitRequest,
    CommitResult,
    FinishRequest,
    StageRequest,
    changes_from_json,
    collection_to_json,
    run_to_json,
    version_to_json,
)

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
    # the root of a manifest whose pages the client uploaded as blobs; changes apply onto it
    manifest: str | None = None


class StageIn(BaseModel):
    name: str
    type: str
    distributed_id: str = Field(min_length=1, max_length=256)
    changes: list[Any]  # read as a stream (StreamedChanges), never validated as this list
    base_version_id: str | None = None
    description: str | None = None
    metadata: dict[str, Any] | None = None
    aliases: list[str] = []
    tags: list[str] = []
    run_id: str | None = None


def commit_result_to_json(r: CommitResult) -> dict[str, Any]:
    return dict(to_json(r))


def _checked(entity: str, project: str, body: CommitIn | StageIn) -> tuple[str, str]:
    """The project of a commit, upsert or finish, and its fields but the changes, validated."""
    entity, project = _names(entity, project)
    validate_artifact_name(body.name)
    validate_type(body.type)
    validate_aliases(body.aliases)
    validate_tags(body.tags)
    _description(body.description)
    if body.run_id is not None:
        _run_id(body.run_id)
    return entity, project


@router.post(
    "/projects/{entity}/{project}/commit",
    summary="Commit a new version",
    response_model=CommitResult,
)
def commit(entity: str, project: str, body: CommitIn, svc: Svc) -> dict[str, Any]:
    entity, project = _checked(entity, project, body)
    changes = changes_from_json(body.changes)
    if body.manifest is not None:
        check_digest(body.manifest)
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
        manifest=body.manifest,
    )
    return commit_result_to_json(svc.commit(req))


def _stage_schema() -> dict[str, Any]:
    """The body ``/stage`` and ``/finish`` declare: ``StageIn`` (they read it themselves)."""
    schema = StageIn.model_json_schema(ref_template="#/components/schemas/{model}")
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


async def _body_text(request: Request) -> str:
    """The request's body as text (not kept as bytes besides: ``Request.body()`` would)."""
    parts = [chunk async for chunk in request.stream()]
    raw = b"".join(parts)
    parts.clear()
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise ValidationError("bad request: body: not UTF-8") from None


def _streamed_stage(raw: str) -> tuple[StageIn, StreamedChanges]:
    """An upsert's or a finish's body: its fields as ``StageIn`` and its changes streamed (an
    upsert of 50,000 changes is never all Python objects at once: ``_streamed_changes``)."""
    fields, changes = streamed_body(raw)
    try:
        body = StageIn.model_validate(fields)
    except PydanticError as e:
        raise RequestValidationError(
            [{**err, "loc": ("body", *err["loc"])} for err in e.errors()]
        ) from None
    return body, changes


async def _distributed(
    entity: str,
    project: str,
    request: Request,
    answer: Callable[[StageIn, dict[str, Any]], dict[str, Any]],
) -> dict[str, Any]:
    """An upsert or a finish: its body read and checked, then ``answer(body, fields)`` with the
    fields of its ``StageRequest``, in a worker thread."""
    raw = await _body_text(request)

    def run() -> dict[str, Any]:
        body, changes = _streamed_stage(raw)
        names = _checked(entity, project, body)
        return answer(body, _distributed_fields(*names, body, changes))

    return await run_in_threadpool(run)


@router.post(
    "/projects/{entity}/{project}/stage",
    summary="Upsert into a distributed version",
    response_model=VersionRecord,
    openapi_extra=_stage_schema(),
)
async def stage(entity: str, project: str, request: Request, svc: Svc) -> dict[str, Any]:
    return await _distributed(
        entity,
        project,
        request,
        lambda _, fields: version_to_json(svc.stage(StageRequest(**fields))),
    )


def _distributed_fields(
    entity: str, project: str, body: StageIn, changes: Collection[Change]
) -> dict[str, Any]:
    """What an upsert and a finish send to the service alike (checked by ``_checked``)."""
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


@router.post(
    "/projects/{entity}/{project}/finish",
    summary="Commit a distributed version",
    response_model=CommitResult,
    openapi_extra=_stage_schema(),
)
async def finish(entity: str, project: str, request: Request, svc: Svc) -> dict[str, Any]:
    return await _distributed(
        entity,
        project,
        request,
        lambda body, fields: commit_result_to_json(
            svc.finish(FinishRequest(**fields, tags=body.tags))
        ),
    )


@router.delete("/versions/{version_id}/pending", summary="Discard a PENDING version")
def discard_pending(version_id: str, svc: Svc) -> dict[str, Any]:
    svc.discard_pending(version_id)
    return {}


class CleanupIn(BaseModel):
    older_than_seconds: float = Field(ge=0)


@router.post("/admin/cleanup-pending", summary="Discard stale PENDING versions (server admins)")
def cleanup_pending(body: CleanupIn, svc: Svc) -> dict[str, Any]:
    if not math.isfinite(body.older_than_seconds):
        raise ValidationError("older_than_seconds must be finite")
    return {"discarded": svc.cleanup_pending(body.older_than_seconds)}


class GcIn(BaseModel):
    grace_seconds: float = Field(default=DEFAULT_GRACE_SECONDS, ge=0, le=10 * 365 * 86400)
    dry_run: bool = False


@router.post("/admin/gc", summary="Remove blobs no version uses (server admins)")
def admin_gc(body: GcIn, svc: Svc) -> dict[str, Any]:
    """The same collector as `cairn gc --db/--store`, under the lock every server shares."""
    report, swept = svc.collect_garbage(grace_seconds=body.grace_seconds, dry_run=body.dry_run)
    return {**report.to_json(), "abandoned_uploads_removed": swept}


@router.post("/admin/verify", summary="Re-hash every stored blob (server admins)")
def admin_verify(svc: Svc) -> dict[str, Any]:
    """The same check as `cairn verify --db/--store`: every committed version, every blob."""
    return svc.verify().to_json()


@router.get(
    "/projects/{entity}/{project}/artifacts/{name}/resolve",
    summary="The version name:label names",
    response_model=VersionRecord,
)
def resolve(
    entity: str, project: str, name: str, svc: Svc, label: str | None = None
) -> dict[str, Any]:
    entity, project = _names(entity, project)
    validate_artifact_name(name)
    _text(label, "label", 128)
    return version_to_json(svc.resolve(entity, project, name, label))


@router.get("/versions/{version_id}", summary="A version by id", response_model=VersionRecord)
def get_version(version_id: str, svc: Svc) -> dict[str, Any]:
    return version_to_json(svc.get_version(version_id))


@router.get(
    "/projects/{entity}/{project}/artifacts/{name}/versions",
    summary="Versions of a name",
    response_model=list[VersionRecord],
)
def list_versions(
    entity: str, project: str, name: str, svc: Svc, include_pending: bool = False
) -> list[dict[str, Any]]:
    entity, project = _names(entity, project)
    validate_artifact_name(name)
    recs = svc.list_versions(entity, project, name, include_pending=include_pending)
    return [version_to_json(r) for r in recs]


@router.get(
    "/projects/{entity}/{project}/collections",
    summary="Artifact collections",
    response_model=list[CollectionRecord],
)
def list_collections(
    entity: str, project: str, svc: Svc, type: str | None = None
) -> list[dict[str, Any]]:
    entity, project = _names(entity, project)
    if type is not None:
        validate_type(type)
    return [collection_to_json(c) for c in svc.list_collections(entity, project, type)]


@router.get("/projects/{entity}/{project}/types", summary="Artifact types in use")
def list_types(entity: str, project: str, svc: Svc) -> list[str]:
    entity, project = _names(entity, project)
    return svc.list_types(entity, project)


@router.get("/projects", summary="Projects the key may read")
def list_projects(svc: Svc, entity: str | None = None) -> list[list[str]]:
    if entity is not None:
        validate_project(entity, "entity")
    return [[e, p] for e, p in svc.list_projects(entity)]


class VersionUpdateIn(BaseModel):
    description: str | None = None
    metadata: dict[str, Any] | None = None
    aliases: list[str] | None = None
    tags: list[str] | None = None


@router.patch(
    "/versions/{version_id}",
    summary="Change a version's description, metadata, ...",
    response_model=VersionRecord,
)
def update_version(version_id: str, body: VersionUpdateIn, svc: Svc) -> dict[str, Any]:
    _description(body.description)
    aliases = None if body.aliases is None else validate_aliases(body.aliases)
    tags = None if body.tags is None else validate_tags(body.tags)
    rec = svc.update_version(
        version_id, description=body.description, metadata=body.metadata, aliases=aliases, tags=tags
    )
    return version_to_json(rec)


@router.put(
    "/versions/{version_id}/aliases/{alias}",
    summary="Point an alias at a version",
    response_model=VersionRecord,
)
def add_alias(version_id: str, alias: str, svc: Svc) -> dict[str, Any]:
    return version_to_json(svc.add_alias(version_id, validate_alias(alias)))


@router.delete(
    "/versions/{version_id}/aliases/{alias}",
    summary="Remove an alias",
    response_model=VersionRecord,
)
def remove_alias(version_id: str, alias: str, svc: Svc) -> dict[str, Any]:
    return version_to_json(svc.remove_alias(version_id, validate_alias(alias)))


@router.delete("/versions/{version_id}", summary="Delete a version")
def delete_version(version_id: str, svc: Svc, delete_aliases: bool = False) -> dict[str, Any]:
    svc.delete_version(version_id, delete_aliases=delete_aliases)
    return {}


class UseIn(BaseModel):
    entity: str
    project: str
    run_id: str


@router.post("/versions/{version_id}/users", summary="Record that a run used a version")
def use_version(version_id: str, body: UseIn, svc: Svc) -> dict[str, Any]:
    entity, project = _names(body.entity, body.project)
    run = RunRecord(id=_run_id(body.run_id), entity=entity, project=project, name="")
    svc.use_version(version_id, run)
    return {}


@router.get(
    "/versions/{version_id}/runs",
    summary="Runs that used, logged or wrote a version",
    response_model=list[RunRecord],
)
def version_runs(version_id: str, svc: Svc, role: str = "input") -> list[dict[str, Any]]:
    return [run_to_json(r) for r in svc.version_runs(version_id, _role(role))]
