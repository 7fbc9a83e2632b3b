"""An artifact (collection): its versions, and alias management for users who may write."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from cairn.core import is_version_label, validate_alias
from cairn.core._records import RunRecord, VersionRecord
from cairn.errors import PermissionDeniedError, UsageError, ValidationError
from cairn.ui._web import Ctx, form_data, page_context, safe_next
from cairn.ui.views._common import find_collection, maybe_run, maybe_version

router = APIRouter(include_in_schema=False)
Page = Annotated[Ctx, Depends(page_context)]


@dataclass(frozen=True, slots=True)
class VersionRow:
    version: VersionRecord
    run: RunRecord | None
    base: VersionRecord | None


def _page(
    ctx: Ctx, entity: str, project: str, type_name: str, name: str, error: str | None = None
) -> HTMLResponse:
    collection = find_collection(ctx, entity, project, type_name, name)
    versions = sorted(
        ctx.service.list_versions(entity, project, name),
        key=lambda v: v.index or 0,
        reverse=True,
    )
    by_id = {v.id: v for v in versions}
    runs: dict[str, RunRecord | None] = {}
    rows = []
    for v in versions:
        if v.created_by and v.created_by not in runs:
            runs[v.created_by] = maybe_run(ctx, entity, project, v.created_by)
        base = None
        if v.base_version_id:
            base = by_id.get(v.base_version_id) or maybe_version(ctx, v.base_version_id)
        rows.append(VersionRow(v, runs.get(v.created_by or ""), base))
    return ctx.render(
        "collection.html",
        status_code=400 if error else 200,
        collection=collection,
        rows=rows,
        can_write=ctx.can_write(entity, project),
        error=error,
    )


@router.get("/{entity}/{project}/artifacts/{type_name}/{name}")
def collection_page(entity: str, project: str, type_name: str, name: str, ctx: Page) -> Response:
    return _page(ctx, entity, project, type_name, name)


@router.post("/{entity}/{project}/artifacts/{type_name}/{name}")
async def change_alias(
    entity: str, project: str, type_name: str, name: str, request: Request
) -> Response:
    fields = await form_data(request)
    ctx = await run_in_threadpool(page_context, request)

    def act() -> Response:
        if not ctx.can_write(entity, project):
            raise PermissionDeniedError(f"you may not change versions of {entity}/{project}")
        find_collection(ctx, entity, project, type_name, name)
        action = fields.get("action", "")
        try:
            alias = validate_alias(fields.get("alias", "").strip())
            label = fields.get("version", "")
            if not is_version_label(label):
                raise ValidationError(f"not a version number: {label!r}")
            version = ctx.service.resolve(entity, project, name, label)
            if action == "add":
                ctx.service.add_alias(version.id, alias)
            elif action == "remove":
                ctx.service.remove_alias(version.id, alias)
            else:
                raise ValidationError(f"unknown action {action!r}")
        except (ValidationError, UsageError) as exc:
            return _page(ctx, entity, project, type_name, name, error=str(exc))
        back = ctx.urls.collection(entity, project, type_name, name)
        return RedirectResponse(safe_next(fields.get("next") or back, request), 303)

    return await run_in_threadpool(act)
