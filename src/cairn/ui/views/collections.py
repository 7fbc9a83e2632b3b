"""An artifact (collection): its versions as a table (filtered, sorted and paged in the catalog,
with chosen metadata columns; tick two to compare them), and alias management for writers."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from cairn.core import RunRecord, VersionRecord, flatten_metadata, is_version_label, validate_alias
from cairn.errors import PermissionDeniedError, UsageError, ValidationError
from cairn.service import VERSION_SORTS, SearchRequest, SearchResult
from cairn.ui._web import Ctx, compact_json, form_data, page_context, safe_next
from cairn.ui.views._common import find_collection, find_version, maybe_run, maybe_version

router = APIRouter(include_in_schema=False)
Page = Annotated[Ctx, Depends(page_context)]


PER_PAGE = 50
MAX_PAGE = 10_000
MAX_COLUMNS = 12  # metadata columns shown at once


@dataclass(frozen=True, slots=True)
class VersionRow:
    version: VersionRecord
    run: RunRecord | None
    base: VersionRecord | None
    values: list[str]  # of the chosen metadata columns


@dataclass(frozen=True, slots=True)
class TableState:
    """What the versions table shows: filter, order, page and metadata columns (the URL)."""

    q: str = ""
    sort: str = "version"
    order: str = "desc"
    page: int = 1
    cols: tuple[str, ...] = ()

    def url(self, base: str, **changes: object) -> str:
        state = dataclasses.replace(self, **changes)  # type: ignore[arg-type]
        params: list[tuple[str, str]] = []
        if state.q:
            params.append(("q", state.q))
        if (state.sort, state.order) != ("version", "desc"):
            params += [("sort", state.sort), ("order", state.order)]
        if state.page > 1:
            params.append(("page", str(state.page)))
        params += [("col", c) for c in state.cols]
        return base + ("?" + urlencode(params) if params else "")

    def sort_url(self, base: str, column: str) -> str:
        """Sort by ``column``; again on the same column flips the order."""
        order = "asc" if (self.sort, self.order) == (column, "desc") else "desc"
        return self.url(base, sort=column, order=order, page=1)


def _page(
    ctx: Ctx,
    entity: str,
    project: str,
    type_name: str,
    name: str,
    error: str | None = None,
    state: TableState | None = None,
) -> HTMLResponse:
    state = state or TableState()
    collection = find_collection(ctx, entity, project, type_name, name)
    filter_error = None
    try:
        result = ctx.service.search(
            SearchRequest(
                query=state.q,
                kinds=("version",),
                collection=(entity, project, name),
                sort=state.sort,
                descending=state.order == "desc",
                offset=(state.page - 1) * PER_PAGE,
                limit=PER_PAGE,
            )
        )
    except ValidationError as exc:
        filter_error = str(exc)
        result = SearchResult(totals={"version": 0})
    versions = list(result.versions)
    by_id = {v.id: v for v in versions}
    runs: dict[str, RunRecord | None] = {}
    keys: set[str] = set()
    flat = []
    for v in versions:
        f = flatten_metadata(v.metadata)
        keys.update(f)
        flat.append(f)
    rows = []
    for v, f in zip(versions, flat, strict=True):
        if v.created_by and v.created_by not in runs:
            runs[v.created_by] = maybe_run(ctx, entity, project, v.created_by)
        base = None
        if v.base_version_id:
            base = by_id.get(v.base_version_id) or maybe_version(ctx, v.base_version_id)
        values = [compact_json(f[c]) if c in f else "" for c in state.cols]
        rows.append(VersionRow(v, runs.get(v.created_by or ""), base, values))
    total = result.totals.get("version", 0)
    return ctx.render(
        "collection.html",
        status_code=400 if error or filter_error else 200,
        collection=collection,
        rows=rows,
        total=total,
        table=state,
        base_url=ctx.urls.collection(entity, project, type_name, name),
        per_page=PER_PAGE,
        metadata_keys=sorted(keys | set(state.cols)),
        can_write=ctx.can_write(entity, project),
        error=error or filter_error,
    )


@router.get("/{entity}/{project}/artifacts/{type_name}/{name}")
def collection_page(
    entity: str,
    project: str,
    type_name: str,
    name: str,
    ctx: Page,
    q: str = "",
    sort: str = "version",
    order: str = "desc",
    page: int = 1,
    col: Annotated[list[str] | None, Query()] = None,
    compare: Annotated[list[str] | None, Query()] = None,
) -> Response:
    if compare is not None:
        return _compare(ctx, entity, project, type_name, name, compare)
    if sort not in VERSION_SORTS:
        raise ValidationError(f"sort must be one of {', '.join(VERSION_SORTS)}")
    if order not in ("asc", "desc"):
        raise ValidationError("order must be asc or desc")
    cols = tuple(dict.fromkeys(c for c in (col or []) if c))[:MAX_COLUMNS]
    state = TableState(q.strip(), sort, order, max(1, min(page, MAX_PAGE)), cols)
    return _page(ctx, entity, project, type_name, name, state=state)


def _compare(
    ctx: Ctx, entity: str, project: str, type_name: str, name: str, labels: list[str]
) -> Response:
    """The two versions ticked in the table: the diff of the newer against the older."""
    picked = list(dict.fromkeys(label for label in labels if label))
    if len(picked) != 2:
        raise ValidationError("tick exactly two versions to compare them")
    a, b = (find_version(ctx, entity, project, type_name, name, label) for label in picked)
    old, new = sorted((a, b), key=lambda v: v.index or 0)
    return RedirectResponse(ctx.urls.diff(new, old), status_code=303)


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
