"""The routes of ``/api/v1``: each authenticates, checks the key's role, validates, makes one call."""

from __future__ import annotations

import functools
import inspect
import json
import math
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from sqlalchemy import select

from cairn.catalog import _schema as s
from cairn.catalog._blobs import CatalogBlobStore
from cairn.core import (
    check_digest,
    validate_alias,
    validate_aliases,
    validate_artifact_name,
    validate_project,
    validate_tags,
    validate_type,
)
from cairn.core._records import RunRecord, VersionRecord
from cairn.errors import BlobNotFoundError, PermissionDeniedError, ValidationError
from cairn.server._access import readable_blobs, record_uploads
from cairn.server._auth import ANY, ROLES, Grant, Principal, parse_project, require_valid
from cairn.server._backend import Backend
from cairn.service import CommitRequest, CommitResult, FinishRequest, StageRequest
from cairn.service._wire import (
    BATCH_TYPE,
    changes_from_json,
    check_digests,
    collection_to_json,
    pack_blobs,
    run_to_json,
    unpack_blobs,
    version_to_json,
)
from cairn.storage import LocalBlobStore


def _json_out(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Encode a route's plain JSON answer at once: FastAPI would otherwise validate and walk it
    again (``jsonable_encoder``), which costs more than the work for a list of 20,000 digests."""

    def dump(result: Any) -> Any:
        if isinstance(result, Response):
            return result
        body = json.dumps(result, separators=(",", ":"), allow_nan=False)
        return Response(body, media_type="application/json")

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            return dump(await fn(*args, **kwargs))

        return run_async

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        return dump(fn(*args, **kwargs))

    return run


class _Route(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, _json_out(endpoint), **kwargs)


router = APIRouter(route_class=_Route)
MAX_DIGESTS = 50_000
_ROLES_OF_VERSIONS = ("input", "output", "writer")


async def backend(request: Request) -> Backend:
    b: Backend = request.app.state.backend
    return b


async def principal(request: Request) -> Principal:
    # async: a cached key costs no trip through the thread pool; a new one is looked up there.
    keys = request.app.state.backend.keys
    token = keys.token_of(request.headers.get("authorization"))
    hit, who = keys.cached(token)
    if not hit:
        who = await run_in_threadpool(keys.check, token)
    return require_valid(who)


Who = Annotated[Principal, Depends(principal)]
B = Annotated[Backend, Depends(backend)]


def _names(entity: str, project: str) -> tuple[str, str]:
    return validate_project(entity, "entity"), validate_project(project)


def _version_for(b: Backend, who: Principal, version_id: str, role: str) -> VersionRecord:
    if not version_id.isalnum() or len(version_id) > 32:
        raise ValidationError(f"invalid version id {version_id[:40]!r}")
    rec = b.service.get_version(version_id)
    who.require(rec.entity, rec.project, role)
    return rec


def _readable(who: Principal, records: list[VersionRecord]) -> list[dict[str, Any]]:
    return [version_to_json(r) for r in records if who.role_on(r.entity, r.project) is not None]


def _text(value: Any, what: str, limit: int = 256) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit or "\x00" in value:
        raise ValidationError(f"{what} must be text of at most {limit} characters")
    return value


def _description(value: Any) -> str | None:
    return _text(value, "description", 1 << 20)


def _role(value: str) -> str:
    if value not in _ROLES_OF_VERSIONS:
        raise ValidationError(f"role must be one of {', '.join(_ROLES_OF_VERSIONS)}")
    return value


# -- identity and the API document ------------------------------------------------------------


@router.get("/whoami", summary="The key's user, grants and the server's transfer options")
def whoami(who: Who, b: B) -> dict[str, Any]:
    return {
        "user": who.user,
        "entity": who.user,
        "admin": who.is_admin,
        "grants": [{"entity": g.entity, "project": g.project, "role": g.role} for g in who.grants],
        "presigned_uploads": b.transfers.presigned,
        "part_size": b.transfers.part_size,
        "max_batch_bytes": b.config.max_batch_bytes,
    }


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, who: Who) -> dict[str, Any]:
    doc: dict[str, Any] = request.app.openapi()
    return doc


# -- runs -----------------------------------------------------------------------------------------


class RunIn(BaseModel):
    id: str = Field(max_length=128)
    name: str = Field(max_length=256)
    group: str | None = Field(default=None, max_length=256)
    job_type: str | None = Field(default=None, max_length=256)
    config: dict[str, Any] = {}
    state: str = Field(default="running", max_length=16)
    created_at: float = 0.0


class RunStateIn(BaseModel):
    state: str = Field(max_length=16)
    config: dict[str, Any] | None = None


def _run_id(run_id: str) -> str:
    if not run_id or len(run_id) > 128 or "/" in run_id or not run_id.isprintable():
        raise ValidationError(f"invalid run id {run_id[:60]!r}")
    return run_id


@router.post("/projects/{entity}/{project}/runs", summary="Start (or resume) a run")
def start_run(entity: str, project: str, body: RunIn, who: Who, b: B) -> dict[str, Any]:
    entity, project = _names(entity, project)
    who.require(entity, project, "write")
    rec = RunRecord(
        id=_run_id(body.id),
        entity=entity,
        project=project,
        name=body.name,
        group=body.group,
        job_type=body.job_type,
        config=body.config,
        state=body.state,
        created_at=body.created_at,
    )
    return run_to_json(b.service.start_run(rec))


@router.post("/projects/{entity}/{project}/runs/{run_id}/finish", summary="Finish a run")
def finish_run(
    entity: str, project: str, run_id: str, body: RunStateIn, who: Who, b: B
) -> dict[str, Any]:
    entity, project = _names(entity, project)
    who.require(entity, project, "write")
    b.service.finish_run(entity, project, _run_id(run_id), body.state, body.config)
    return {}


@router.get("/projects/{entity}/{project}/runs/{run_id}", summary="A run")
def get_run(entity: str, project: str, run_id: str, who: Who, b: B) -> dict[str, Any]:
    entity, project = _names(entity, project)
    who.require(entity, project, "read")
    return run_to_json(b.service.get_run(entity, project, _run_id(run_id)))


@router.get("/projects/{entity}/{project}/runs/{run_id}/versions", summary="A run's versions")
def run_versions(
    entity: str, project: str, run_id: str, who: Who, b: B, role: str = "output"
) -> list[dict[str, Any]]:
    entity, project = _names(entity, project)
    who.require(entity, project, "read")
    recs = b.service.run_versions(entity, project, _run_id(run_id), _role(role))
    return _readable(who, recs)


# -- blobs ----------------------------------------------------------------------------------------


class DigestsIn(BaseModel):
    digests: list[str]


def _may_upload(who: Principal) -> None:
    if not any(g.role in ("write", "admin") for g in who.grants):
        raise PermissionDeniedError(f"key of {who.user!r} may not write anywhere, so not upload")


@router.post("/blobs/missing", summary="Which of these blobs the key would have to upload")
def missing_blobs(body: DigestsIn, who: Who, b: B) -> dict[str, Any]:
    digests = check_digests(body.digests, MAX_DIGESTS)
    have = readable_blobs(b.catalog, who, digests)
    return {"missing": [d for d in dict.fromkeys(digests) if d not in have]}


@router.post(
    "/blobs/batch",
    summary="Upload small blobs, many per request (application/vnd.cairn.blobs)",
)
async def upload_batch(request: Request, who: Who, b: B) -> dict[str, Any]:
    _may_upload(who)
    body = await request.body()

    def store() -> int:
        items = list(unpack_blobs(body))  # every blob re-hashed; one bad blob refuses the batch
        b.blobs.put_many(items)
        record_uploads(b.catalog, who.user, [d for d, _ in items])
        return len(items)

    return {"stored": await run_in_threadpool(store)}


FETCH_DIGESTS = 4096
FETCH_BYTES = 16 << 20


@router.post(
    "/blobs/fetch",
    summary="Small blobs, many per answer (application/vnd.cairn.blobs); others are left out",
)
def fetch_blobs(body: DigestsIn, who: Who, b: B) -> Response:
    digests = check_digests(body.digests, FETCH_DIGESTS)
    allowed = readable_blobs(b.catalog, who, digests)
    readable = [d for d in dict.fromkeys(digests) if d in allowed]
    blobs = b.blobs
    found: dict[str, bytes] = {}
    if isinstance(blobs, CatalogBlobStore):
        found = blobs.small_many(readable)
    elif isinstance(blobs, LocalBlobStore):
        for d in readable:
            data = blobs.small(d)
            if data is not None:
                found[d] = data
    items: list[tuple[str, bytes]] = []
    total = 0
    for d in readable:
        data = found.get(d)
        if data is not None and total + len(data) <= FETCH_BYTES:
            items.append((d, data))
            total += len(data)
    return Response(pack_blobs(items), media_type=BATCH_TYPE)


@router.get("/blobs/{digest}", summary="A blob's content (or a redirect to the object store)")
def get_blob(digest: str, who: Who, b: B) -> Response:
    check_digest(digest)
    if digest not in readable_blobs(b.catalog, who, [digest]):
        raise BlobNotFoundError(f"blob {digest} is not in any project this key may read")
    blobs = b.blobs
    if isinstance(blobs, LocalBlobStore):
        size = blobs.size(digest)
        if size is None:
            raise BlobNotFoundError(f"blob {digest} is missing from the store")
        if size >= blobs.small_limit:
            return FileResponse(blobs.path_of(digest), media_type="application/octet-stream")
    if isinstance(blobs, CatalogBlobStore) and b.transfers.s3 is not None:
        size = blobs.size(digest)
        if size is not None and size >= blobs.small_limit:
            s3 = b.transfers.s3
            url = s3.client.generate_presigned_url(
                "get_object", Params={"Bucket": s3.bucket, "Key": s3.key_of(digest)}, ExpiresIn=3600
            )
            return RedirectResponse(url, status_code=307)
    return Response(blobs.get(digest), media_type="application/octet-stream")


class UploadIn(BaseModel):
    digest: str
    size: int = Field(ge=0, le=5 << 40)


@router.post("/uploads", summary="Begin uploading a large blob (in parts, or presigned to S3)")
def begin_upload(body: UploadIn, who: Who, b: B) -> dict[str, Any]:
    _may_upload(who)
    return b.transfers.begin(who.user, check_digest(body.digest), body.size)


@router.get("/uploads/{upload_id}", summary="An upload's state: which parts arrived")
def upload_status(upload_id: str, who: Who, b: B) -> dict[str, Any]:
    return b.transfers.status(who.user, upload_id)


@router.put("/uploads/{upload_id}/parts/{number}", summary="Send one part of an upload")
async def upload_part(
    upload_id: str, number: int, request: Request, who: Who, b: B
) -> dict[str, Any]:
    _may_upload(who)
    writer = await run_in_threadpool(b.transfers.open_part, who.user, upload_id, number)
    try:
        # Each chunk goes to the page cache as it arrives (microseconds: no thread hop).
        async for chunk in request.stream():
            if chunk:
                writer.write(chunk)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return {}


class PartUrlIn(BaseModel):
    checksum: str = Field(max_length=64)


@router.post(
    "/uploads/{upload_id}/parts/{number}/url",
    summary="A presigned URL for one part (S3 stores), bound to the part's SHA-256",
)
def upload_part_url(upload_id: str, number: int, body: PartUrlIn, who: Who, b: B) -> dict[str, Any]:
    _may_upload(who)
    return b.transfers.part_url(who.user, upload_id, number, body.checksum)


@router.post("/uploads/{upload_id}/complete", summary="Verify and store an upload's blob")
def complete_upload(upload_id: str, who: Who, b: B) -> dict[str, Any]:
    _may_upload(who)
    up = b.transfers._load(who.user, upload_id)
    size = b.transfers.complete(who.user, upload_id)
    record_uploads(b.catalog, who.user, [up.digest])
    return {"digest": up.digest, "size": size}


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
    )
    return _commit_result(b.service.commit(req))


@router.post("/projects/{entity}/{project}/stage", summary="Upsert into a distributed version")
def stage(entity: str, project: str, body: StageIn, who: Who, b: B) -> dict[str, Any]:
    entity, project, (changes, missing) = _check_write(b, who, entity, project, body)
    if missing:
        raise BlobNotFoundError(
            f"{len(missing)} blobs must be uploaded before staging, e.g. {missing[0]}"
        )
    req = StageRequest(
        entity=entity,
        project=project,
        name=body.name,
        type=body.type,
        distributed_id=body.distributed_id,
        changes=changes,
        base_version_id=body.base_version_id,
        run_id=body.run_id,
        description=body.description,
        metadata=body.metadata,
    )
    return version_to_json(b.service.stage(req))


def _finished_by(b: Backend, entity: str, project: str, body: StageIn) -> str | None:
    """The version this run already committed for the distributed id, if the newest one of that
    id is it (so a finish repeated after a lost answer does not start a new version)."""
    if body.run_id is None:
        return None
    v, c, p, r = s.versions.c, s.collections.c, s.projects.c, s.runs.c
    q = (
        select(v.id, v.state, r.run_id)
        .join(s.collections, c.id == v.collection_id)
        .join(s.projects, p.id == c.project_id)
        .outerjoin(s.runs, r.id == v.created_by)
        .where(p.entity == entity, p.name == project, c.name == body.name)
        .where(v.distributed_id == body.distributed_id, v.state != "DELETED")
        .order_by(v.created_at.desc())
        .limit(1)
    )
    row = b.catalog.read(lambda tx: tx.conn.execute(q).first())
    if row is None or row.state != "COMMITTED" or row.run_id != body.run_id:
        return None
    return str(row.id)


@router.post("/projects/{entity}/{project}/finish", summary="Commit a distributed version")
def finish(entity: str, project: str, body: StageIn, who: Who, b: B) -> dict[str, Any]:
    entity, project, (changes, missing) = _check_write(b, who, entity, project, body)
    if missing:
        return _commit_result(CommitResult(None, False, missing))
    done = _finished_by(b, entity, project, body)
    if done is not None:  # a retried finish whose first attempt committed: the same answer
        return _commit_result(CommitResult(b.service.get_version(done), True))
    req = FinishRequest(
        entity=entity,
        project=project,
        name=body.name,
        type=body.type,
        distributed_id=body.distributed_id,
        changes=changes,
        base_version_id=body.base_version_id,
        run_id=body.run_id,
        description=body.description,
        metadata=body.metadata,
        aliases=body.aliases,
        tags=body.tags,
    )
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


# -- API keys (server admins) ------------------------------------------------------------------


class KeyIn(BaseModel):
    user: str
    project: str | None = None
    role: str = "write"


@router.post("/keys", summary="Create an API key (server admins)")
def create_key(body: KeyIn, who: Who, b: B) -> dict[str, Any]:
    who.require_admin()
    if body.role not in ROLES:
        raise ValidationError(f"role must be one of {', '.join(ROLES)}, not {body.role!r}")
    validate_project(body.user, "user")
    if body.project is None:
        grant = (
            Grant(ANY, ANY, "admin") if body.role == "admin" else Grant(body.user, ANY, body.role)
        )
    else:
        entity, project = parse_project(body.project, body.user)
        grant = Grant(entity, project, body.role)
    key_id, key = b.keys.create(body.user, [grant])
    return {
        "id": key_id,
        "key": key,
        "user": body.user,
        "grants": [{"entity": grant.entity, "project": grant.project, "role": grant.role}],
    }


@router.delete("/keys/{key_id}", summary="Revoke an API key (server admins)")
def revoke_key(key_id: str, who: Who, b: B) -> dict[str, Any]:
    who.require_admin()
    b.keys.revoke(key_id)
    return {}


@router.get("/keys", summary="Every API key, without secrets (server admins)")
def list_keys(who: Who, b: B) -> list[dict[str, Any]]:
    who.require_admin()
    return b.keys.list()
