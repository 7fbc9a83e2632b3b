"""What every route module shares: the JSON answer, the key's scoped service, validators."""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute

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
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, _json_out(endpoint), **kwargs)


_ROLES_OF_VERSIONS = ("input", "output", "writer")


async def backend(request: Request) -> Backend:
    b: Backend = request.app.state.backend
    return b


async def principal(request: Request) -> Principal:
    # async: a cached key costs no trip through the thread pool; a new one is looked up there.
    keys = request.app.state.backend.keys
    try:
        token = keys.token_of(request.headers.get("authorization"))
    except AuthenticationError:
        key_refused(request.url.path, "", "no key")
        raise
    hit, who = keys.cached(token)
    if not hit:
        who = await run_in_threadpool(keys.check, token)
    if who is None:
        key_refused(request.url.path, token, "unknown, malformed or revoked")
    else:
        request.state.key_id = who.key_id
    return require_valid(who)


Who = Annotated[Principal, Depends(principal)]
B = Annotated[Backend, Depends(backend)]


async def scoped(request: Request) -> ScopedService:
    """The server's service as the request's key may use it: every route calls this. One
    dependency, not one over ``principal`` and ``backend``: FastAPI solves each dependency of a
    request anew, which costs more than the key check itself on a small read."""
    return ScopedService(request.app.state.backend, await principal(request))


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
