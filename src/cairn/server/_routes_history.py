"""Routes for a run's history and summary (W&B's ``run.log``, ``run.summary``,
``Api().run(path).history()``). Rows and the summary travel as JSON texts in W&B's history
encoding (NaN and infinities as JSON's tokens), checked by the service as on the embedded store."""

from __future__ import annotations

from typing import Any

from fastapi import Query
from pydantic import BaseModel, Field

from cairn.server._common import Svc, _names, _run_id, new_router

router = new_router()


class HistoryIn(BaseModel):
    rows: list[str] = Field(default=[], max_length=100_000)
    summary: str | None = None


@router.post(
    "/projects/{entity}/{project}/runs/{run_id}/history",
    summary="Add history rows to a run and set its summary",
)
def log_history(
    entity: str, project: str, run_id: str, body: HistoryIn, svc: Svc
) -> dict[str, Any]:
    entity, project = _names(entity, project)
    svc.log_history(entity, project, _run_id(run_id), body.rows, body.summary)
    return {}


@router.get("/projects/{entity}/{project}/runs/{run_id}/history", summary="A run's history rows")
def run_history(
    entity: str,
    project: str,
    run_id: str,
    svc: Svc,
    min_step: int | None = Query(default=None, ge=0),
    max_step: int | None = Query(default=None, ge=0),
    limit: int | None = Query(default=None, ge=0),
) -> dict[str, Any]:
    entity, project = _names(entity, project)
    rows = svc.run_history(
        entity, project, _run_id(run_id), min_step=min_step, max_step=max_step, limit=limit
    )
    return {"rows": rows}


@router.get("/projects/{entity}/{project}/runs/{run_id}/summary", summary="A run's summary")
def run_summary(entity: str, project: str, run_id: str, svc: Svc) -> dict[str, Any]:
    entity, project = _names(entity, project)
    return {"summary": svc.run_summary(entity, project, _run_id(run_id))}
