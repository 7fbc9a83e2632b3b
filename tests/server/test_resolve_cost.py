"""What a server's ``resolve`` costs the catalog: one statement outside a transaction on
PostgreSQL (no BEGIN and COMMIT round trips), the hot path of ``use_artifact("name:latest")``."""

from __future__ import annotations

import pathlib
from typing import Any
from unittest import mock

from fastapi.routing import APIRoute
from sqlalchemy import event

from cairn.service import API, CommitRequest
from tests._infra import reset_database
from tests.conftest import InProcess


def test_a_resolve_is_one_statement_outside_a_transaction(inprocess: InProcess) -> None:
    server = inprocess("postgres", "local")
    reset_database(server.db)
    service = server.backend.service
    done = service.commit(
        CommitRequest("me", "proj", "ds", "dataset", changes=[], aliases=["best"])
    ).version
    assert done is not None
    engine = server.backend.catalog.engine
    seen: list[tuple[str, bool]] = []

    def count(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append((statement, bool(conn.connection.dbapi_connection.autocommit)))

    event.listen(engine, "before_cursor_execute", count)
    try:
        for label in (None, "best", "v0"):
            seen.clear()
            assert service.resolve("me", "proj", "ds", label).id == done.id
            assert len(seen) == 1, [s for s, _ in seen]
            assert seen[0][1], "the statement ran inside a transaction (BEGIN ... COMMIT)"
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_a_resolve_request_tries_each_route_once_and_solves_one_dependency(
    inprocess: InProcess, tmp_path: pathlib.Path
) -> None:
    """FastAPI matches an included router twice per request (once to pick the router, once
    inside it) and solves each dependency of a route anew: the API's routes are the app's own
    and the key's scoped service is one dependency (``server/_common.py``)."""
    server = inprocess("postgres", "local")
    reset_database(server.db)
    api = [r for r in server.app.router.routes if str(getattr(r, "path", "")).startswith(API)]
    assert api and all(isinstance(r, APIRoute) for r in api), "an included router's layer"
    resolve = next(r for r in api if r.path.endswith("/resolve"))
    (scoped,) = resolve.dependant.dependencies
    assert not scoped.dependencies, "the scoped service solved over sub-dependencies"
    key = server.create_key("me")
    service = server.service(key, str(tmp_path / "cache"))
    service.commit(CommitRequest("me", "proj", "ds", "dataset", changes=[]))
    tried: list[str] = []
    matches = APIRoute.matches

    def counted(route: APIRoute, scope: Any) -> Any:
        tried.append(route.path)
        return matches(route, scope)

    with mock.patch.object(APIRoute, "matches", counted):
        assert service.resolve("me", "proj", "ds", None).name == "ds"
    assert tried == [r.path for r in api[: api.index(resolve) + 1]]


def test_a_resolve_parses_its_url_once(inprocess: InProcess, tmp_path: pathlib.Path) -> None:
    """The client builds an API call's whole URL in one parse (``HttpClient.api_url``): httpx
    parsed the relative path, the URL merged with its base and that one with its query."""
    import httpx._urlparse
    import httpx._urls

    server = inprocess("postgres", "local")
    reset_database(server.db)
    service = server.service(server.create_key("me"), str(tmp_path / "cache"))
    service.commit(CommitRequest("me", "proj", "ds", "dataset", changes=[], aliases=["best"]))
    for label in (None, "best"):
        parse = mock.Mock(wraps=httpx._urlparse.urlparse)
        with (
            mock.patch.object(httpx._urls, "urlparse", parse),
            mock.patch.object(httpx._urlparse, "urlparse", parse),
        ):
            assert service.resolve("me", "proj", "ds", label).name == "ds"
        assert parse.call_count == 1, parse.call_args_list
