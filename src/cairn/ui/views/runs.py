"""A run: its configuration, and the versions it used, logged and wrote."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from cairn.ui._web import Ctx, mapping_rows, page_context

router = APIRouter(include_in_schema=False)
Page = Annotated[Ctx, Depends(page_context)]


@router.get("/{entity}/{project}/runs/{run_id}")
def run_page(entity: str, project: str, run_id: str, ctx: Page) -> Response:
    svc = ctx.service
    run = svc.get_run(entity, project, run_id)
    return ctx.render(
        "run.html",
        run=run,
        tab="overview",
        config=mapping_rows(run.config),
        inputs=svc.run_versions(entity, project, run_id, "input"),
        outputs=svc.run_versions(entity, project, run_id, "output"),
        writes=svc.run_versions(entity, project, run_id, "writer"),
    )
