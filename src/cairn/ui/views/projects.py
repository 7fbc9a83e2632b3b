"""The projects the user may read, and a project's artifacts grouped by type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse

from cairn.core import CollectionRecord
from cairn.errors import NotFoundError
from cairn.ui._web import Ctx, page_context

router = APIRouter(include_in_schema=False)
Page = Annotated[Ctx, Depends(page_context)]

MAX_PROJECTS = 500


@dataclass(frozen=True, slots=True)
class ProjectRow:
    entity: str
    name: str
    artifacts: int
    types: list[str]
    updated: float


def _rows(ctx: Ctx, entity: str | None) -> tuple[list[ProjectRow], int]:
    projects = ctx.service.list_projects(entity)
    rows = []
    for e, p in projects[:MAX_PROJECTS]:
        collections = ctx.service.list_collections(e, p)
        rows.append(
            ProjectRow(
                e,
                p,
                len(collections),
                sorted({c.type for c in collections}),
                max((c.updated_at for c in collections), default=0.0),
            )
        )
    return rows, len(projects)


@router.get("/")
def home(ctx: Page) -> HTMLResponse:
    rows, total = _rows(ctx, None)
    return ctx.render("projects.html", entity=None, projects=rows, total=total)


@router.get("/{entity}")
def entity_projects(entity: str, ctx: Page) -> HTMLResponse:
    rows, total = _rows(ctx, entity)
    if not rows:
        raise NotFoundError(f"no projects of {entity} that you may read")
    return ctx.render("projects.html", entity=entity, projects=rows, total=total)


@router.get("/{entity}/{project}")
def project_page(entity: str, project: str, ctx: Page) -> HTMLResponse:
    if (entity, project) not in ctx.service.list_projects(entity):
        raise NotFoundError(f"project {entity}/{project} not found")
    by_type: dict[str, list[CollectionRecord]] = {}
    for c in ctx.service.list_collections(entity, project):
        by_type.setdefault(c.type, []).append(c)
    return ctx.render(
        "project.html",
        entity=entity,
        project=project,
        by_type=sorted(by_type.items()),
    )
