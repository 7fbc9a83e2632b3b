"""Routes: who the key is, the API document, runs."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from pydantic import BaseModel, Field

from cairn.core import RunRecord, VersionRecord
from cairn.server._common import B, Svc, Who, _names, _role, _run_id, new_router
from cairn.service import run_to_json, version_to_json

router = new_router()


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


def run_of(entity: str, project: str, body: RunIn, finished_at: float | None = None) -> RunRecord:
    """The run a request body describes (a new run, or one imported with ``finished_at``)."""
    return RunRecord(
        id=_run_id(body.id),
        entity=entity,
        project=project,
        name=body.name,
        group=body.group,
        job_type=body.job_type,
        config=body.config,
        state=body.state,
        created_at=body.created_at,
        finished_at=finished_at,
    )


@router.post(
    "/projects/{entity}/{project}/runs", summary="Start (or resume) a run", response_model=RunRecord
)
def start_run(entity: str, project: str, body: RunIn, svc: Svc) -> dict[str, Any]:
    entity, project = _names(entity, project)
    return run_to_json(svc.start_run(run_of(entity, project, body)))


@router.post("/projects/{entity}/{project}/runs/{run_id}/finish", summary="Finish a run")
def finish_run(
    entity: str, project: str, run_id: str, body: RunStateIn, svc: Svc
) -> dict[str, Any]:
    entity, project = _names(entity, project)
    svc.finish_run(entity, project, _run_id(run_id), body.state, body.config)
    return {}


@router.get("/projects/{entity}/{project}/runs/{run_id}", summary="A run", response_model=RunRecord)
def get_run(entity: str, project: str, run_id: str, svc: Svc) -> dict[str, Any]:
    entity, project = _names(entity, project)
    return run_to_json(svc.get_run(entity, project, _run_id(run_id)))


@router.get(
    "/projects/{entity}/{project}/runs/{run_id}/versions",
    summary="A run's versions",
    response_model=list[VersionRecord],
)
def run_versions(
    entity: str, project: str, run_id: str, svc: Svc, role: str = "output"
) -> list[dict[str, Any]]:
    entity, project = _names(entity, project)
    recs = svc.run_versions(entity, project, _run_id(run_id), _role(role))
    return [version_to_json(r) for r in recs]
