"""Search: projects, artifacts, versions and runs matching the header's search box, paged."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse

from cairn.core import flatten_metadata, parse_query
from cairn.errors import ValidationError
from cairn.service import SEARCH_KINDS, SearchRequest, SearchResult
from cairn.ui._web import Ctx, compact_json, page_context

router = APIRouter(include_in_schema=False)
Page = Annotated[Ctx, Depends(page_context)]

PER_KIND = 10  # hits of each kind on the overview
PER_PAGE = 50  # hits on a page of one kind
MAX_PAGE = 1000
MAX_COLUMNS = 6


@router.get("/-/search")
def search_page(ctx: Page, q: str = "", kind: str = "", page: int = 1) -> HTMLResponse:
    q = q.strip()
    error = None
    result = SearchResult()
    kinds = (kind,) if kind in SEARCH_KINDS else SEARCH_KINDS
    page = max(1, min(page, MAX_PAGE))
    limit = PER_PAGE if kind in SEARCH_KINDS else PER_KIND
    if q:
        try:
            result = ctx.service.search(
                SearchRequest(query=q, kinds=kinds, offset=(page - 1) * limit, limit=limit)
            )
        except ValidationError as exc:
            error = str(exc)
    # The metadata a query compares is shown beside each version found.
    columns: list[str] = []
    if q and error is None:
        columns = list(dict.fromkeys(c.key for c in parse_query(q).metadata))[:MAX_COLUMNS]
    values = {
        v.id: [compact_json(f[k]) if k in f else "" for k in columns]
        for v in result.versions
        for f in (flatten_metadata(v.metadata),)
    }
    return ctx.render(
        "search.html",
        columns=columns,
        values=values,
        status_code=400 if error else 200,
        search_query=q,
        kind=kind if kind in SEARCH_KINDS else "",
        page=page,
        limit=limit,
        result=result,
        error=error,
    )
