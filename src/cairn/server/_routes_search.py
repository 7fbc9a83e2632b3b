"""Route: search (``POST /search``), limited to the projects the key may read."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from cairn.server._common import Svc, new_router
from cairn.service import SearchRequest, SearchResult, search_result_to_json

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


@router.post(
    "/search",
    summary="Projects, artifacts, versions and runs matching a query",
    response_model=SearchResult,
)
def search(body: SearchIn, svc: Svc) -> dict[str, Any]:
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
    return search_result_to_json(svc.search(request))
