"""Route: search (``POST /search``), limited to the projects the key may read."""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel, Field

from cairn.server._auth import Principal
from cairn.server._common import B, Who, new_router
from cairn.service import LocalService, SearchRequest, SearchResult
from cairn.service._wire import search_result_to_json

router = new_router()


class SearchIn(BaseModel):
    query: str = Field(default="", max_length=1000)
    kinds: list[str] = ["project", "collection", "version", "run"]
    projects: list[tuple[str, str]] | None = None
    collection: tuple[str, str, str] | None = None
    sort: str = "created"
    descending: bool = True
    offset: int = 0
    limit: int = 20


def scoped_search(service: LocalService, who: Principal, request: SearchRequest) -> SearchResult:
    """``service.search`` within the projects ``who`` may read (and those asked for, if any).

    The scope is a list of projects the catalog query is limited to, so nothing outside the
    key's grants is even counted."""
    request.check()
    if request.collection is not None:
        who.require(request.collection[0], request.collection[1], "read")
    scope: tuple[tuple[str, str], ...] | None = request.projects
    if not who.is_admin:
        readable = [p for p in service.list_projects() if who.role_on(*p) is not None]
        wanted = None if scope is None else set(scope)
        scope = tuple(p for p in readable if wanted is None or p in wanted)
    return service.search(dataclasses.replace(request, projects=scope))


@router.post("/search", summary="Projects, artifacts, versions and runs matching a query")
def search(body: SearchIn, who: Who, b: B) -> dict[str, Any]:
    request = SearchRequest(
        query=body.query,
        kinds=tuple(body.kinds),
        projects=None if body.projects is None else tuple(body.projects),
        collection=body.collection,
        sort=body.sort,
        descending=body.descending,
        offset=body.offset,
        limit=body.limit,
    )
    return search_result_to_json(scoped_search(b.service, who, request))
