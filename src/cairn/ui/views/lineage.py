"""Lineage graphs around a version or a run, drawn as SVG (no script needed to navigate)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from cairn.core import RunRecord, VersionRecord
from cairn.ui._lineage import NODE_H, NODE_W, gather, layout
from cairn.ui._web import Ctx, page_context
from cairn.ui.views._common import find_version
from cairn.ui.views.versions import BASE

router = APIRouter(include_in_schema=False)
Page = Annotated[Ctx, Depends(page_context)]

Depth = Annotated[int, Query(ge=1, le=12)]
DEFAULT_DEPTH = 3


def _render(ctx: Ctx, center: VersionRecord | RunRecord, depth: int, **values: Any) -> Response:
    graph = gather(ctx.service, center, depth)
    placed = layout(graph.keys, graph.edges)
    return ctx.render(
        "lineage.html",
        graph=graph,
        layout=placed,
        depth=depth,
        node_w=NODE_W,
        node_h=NODE_H,
        **values,
    )


@router.get(BASE + "/lineage")
def version_lineage(
    entity: str,
    project: str,
    type_name: str,
    name: str,
    label: str,
    ctx: Page,
    depth: Depth = DEFAULT_DEPTH,
) -> Response:
    version = find_version(ctx, entity, project, type_name, name, label)
    return _render(ctx, version, depth, version=version, run=None, tab="lineage")


@router.get("/{entity}/{project}/runs/{run_id}/lineage")
def run_lineage(
    entity: str, project: str, run_id: str, ctx: Page, depth: Depth = DEFAULT_DEPTH
) -> Response:
    run = ctx.service.get_run(entity, project, run_id)
    return _render(ctx, run, depth, version=None, run=run, tab="lineage")
