"""What every route module shares: the JSON answer, the key's scoped service, validators."""

from __future__ import annotations

import functools
import inspect
import json
import typing
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from starlette.convertors import StringConvertor
from starlette.datastructures import URL, Headers
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

from cairn.core import validate_project
from cairn.errors import AuthenticationError, ValidationError
from cairn.server._auth import Principal, require_valid
from cairn.server._backend import Backend
from cairn.server._log import key_refused
from cairn.server._scoped import ScopedService
from cairn.service import API


def _json_out(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Encode a route's plain JSON answer at once: FastAPI would otherwise validate and walk it
    again (``jsonable_encoder``), which costs more than the work for a list of 20,000 digests."""

    def dump(result: Any) -> Any:
        if isinstance(result, Response):
            return result
        body = json.dumps(result, separators=(",", ":"), allow_nan=False)
        return Response(body, media_type="application/json")

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            return dump(await fn(*args, **kwargs))

        return run_async

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        return dump(fn(*args, **kwargs))

    return run


class _Route(APIRoute):
    """A route of the API: its answer encoded once (``_json_out``); a plain read answered
    without FastAPI's request handling (``_PlainRead``) when the request needs none of it."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, _json_out(endpoint), **kwargs)
        self.plain = _PlainRead.of(self, endpoint)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        # Most routes a request is tried against are not its own: one test of the pattern
        # first (FastAPI's and Starlette's matching cost five calls to say no).
        if not scope.get("root_path") and self.path_regex.match(scope["path"]) is None:
            return Match.NONE, {}
        return super().matches(scope)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.plain is not None and scope["method"] == "GET":
            response = await self.plain.answer(scope)
            await response(scope, receive, send)
            return
        await super().handle(scope, receive, send)


class _PlainRead:
    """A GET route whose arguments are text from its path and query plus the key's scoped
    service, called directly: FastAPI would build a ``Request``, solve the dependencies and
    validate each text as text (pydantic), which cost a resolve more CPU than its catalog
    statement. The key is checked and the scoped service made by the dependency's own function
    (``scoped_of``); the arguments are the ones FastAPI would pass: path parameters as matched,
    a query parameter's last value (``?label=``: the empty text), absent ones None. Errors
    raised here are answered by the app's exception handlers, as on FastAPI's way."""

    def __init__(self, route: APIRoute, svc: str, query: frozenset[str]) -> None:
        self.call = route.endpoint
        self.sync = not inspect.iscoroutinefunction(route.endpoint)
        self.svc = svc
        self.query = query

    @classmethod
    def of(cls, route: APIRoute, endpoint: Callable[..., Any]) -> _PlainRead | None:
        """The plain way of ``route`` when it has one: GET, no dependencies but ``Svc``, every
        other parameter text (in the path, or in the query with the default None)."""
        if route.methods != {"GET"} or route.dependencies:
            return None
        try:
            hints = typing.get_type_hints(endpoint, include_extras=True)
        except (NameError, TypeError):
            return None
        svc = None
        query = set()
        for name, param in inspect.signature(endpoint).parameters.items():
            hint = hints.get(name)
            convertor = route.param_convertors.get(name)
            if hint == Svc and svc is None:
                svc = name
            elif convertor is not None:
                # a plain ``str`` path parameter only: ``Path(...)`` (a pattern, a length) is
                # FastAPI's to check
                plain = param.default is inspect.Parameter.empty
                if hint is not str or type(convertor) is not StringConvertor or not plain:
                    return None
            elif hint == (str | None) and param.default is None:
                query.add(name)
            else:
                return None
        return None if svc is None else cls(route, svc, frozenset(query))

    async def answer(self, scope: Scope) -> Any:
        args: dict[str, Any] = dict(scope["path_params"])
        query = scope.get("query_string")
        if query:
            for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
                if name in self.query:
                    args[name] = value
        args[self.svc] = await scoped_of(scope)
        if self.sync:
            return await run_in_threadpool(self.call, **args)
        return await self.call(**args)


_ROLES_OF_VERSIONS = ("input", "output", "writer")


async def backend(request: Request) -> Backend:
    b: Backend = request.app.state.backend
    return b


async def principal(request: Request) -> Principal:
    return await principal_of(request.scope)


async def principal_of(scope: Scope) -> Principal:
    """Who the request's key is (every route, through ``scoped`` or ``_PlainRead``): refused
    keys are logged, the key's id is left in the request's state for the access log."""
    # async: a cached key costs no trip through the thread pool; a new one is looked up there.
    keys = scope["app"].state.backend.keys
    try:
        token = keys.token_of(Headers(scope=scope).get("authorization"))
    except AuthenticationError:
        key_refused(URL(scope=scope).path, "", "no key")
        raise
    hit, who = keys.cached(token)
    if not hit:
        who = await run_in_threadpool(keys.check, token)
    if who is None:
        key_refused(URL(scope=scope).path, token, "unknown, malformed or revoked")
    else:
        scope.setdefault("state", {})["key_id"] = who.key_id
    return require_valid(who)


Who = Annotated[Principal, Depends(principal)]
B = Annotated[Backend, Depends(backend)]


async def scoped(request: Request) -> ScopedService:
    """The server's service as the request's key may use it: every route calls this. One
    dependency, not one over ``principal`` and ``backend``: FastAPI solves each dependency of a
    request anew, which costs more than the key check itself on a small read."""
    return await scoped_of(request.scope)


async def scoped_of(scope: Scope) -> ScopedService:
    return ScopedService(scope["app"].state.backend, await principal_of(scope))


Svc = Annotated[ScopedService, Depends(scoped)]


def _names(entity: str, project: str) -> tuple[str, str]:
    return validate_project(entity, "entity"), validate_project(project)


def _text(value: Any, what: str, limit: int = 256) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit or "\x00" in value:
        raise ValidationError(f"{what} must be text of at most {limit} characters")
    return value


def _description(value: Any) -> str | None:
    return _text(value, "description", 1 << 20)


def _role(value: str) -> str:
    if value not in _ROLES_OF_VERSIONS:
        raise ValidationError(f"role must be one of {', '.join(_ROLES_OF_VERSIONS)}")
    return value


def _run_id(run_id: str) -> str:
    if not run_id or len(run_id) > 128 or "/" in run_id or not run_id.isprintable():
        raise ValidationError(f"invalid run id {run_id[:60]!r}")
    return run_id


def new_router() -> APIRouter:
    """A router of ``/api/v1`` whose routes encode their answers once (see ``_json_out``).

    Its routes carry the whole path: the app adds them to its own routes (``create_app``)
    instead of including the router, whose included-router layer FastAPI matches twice per
    request, over every route before the one that answers."""
    return APIRouter(prefix=API, route_class=_Route)
