"""A run: its configuration, and the versions it used, logged and wrote."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from cairn.ui._charts import HEIGHT, WIDTH, history_charts
from cairn.ui._web import Ctx, mapping_rows, page_context

router = APIRouter(include_in_schema=False)
_MAX_ROWS = 20_000  # history rows read for the charts (sampled down to a few hundred points)
Page = Annotated[Ctx, Depends(page_context)]


@router.get("/{entity}/{project}/runs/{run_id}")
def run_page(entity: str, project: str, run_id: str, ctx: Page) -> Response:
    svc = ctx.service
    run = svc.get_run(entity, project, run_id)
    summary = json.loads(svc.run_summary(entity, project, run_id))
    return ctx.render(
        "run.html",
        run=run,
        tab="overview",
        config=mapping_rows(run.config),
        summary=mapping_rows({k: v for k, v in summary.items() if not k.startswith("_")}),
        charts=history_charts(svc.run_history(entity, project, run_id, limit=_MAX_ROWS)),
        chart_size=(WIDTH, HEIGHT),
        inputs=svc.run_versions(entity, project, run_id, "input"),
        outputs=svc.run_versions(entity, project, run_id, "output"),
        writes=svc.run_versions(entity, project, run_id, "writer"),
    )
