"""The FastAPI application: cairn's REST API (``/api/v1``) over a Service, with API keys.

Every route authenticates the key first (``_common.principal``) and makes its call on the key's
``ScopedService`` (``_scoped.py``), which checks the key's role on what the call touches; every
value a client sends is validated by the route again (names, entry paths, digests), whatever the
client checked. Blob content is re-hashed on arrival. No route fetches a URL on a client's behalf.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from cairn._version import __version__
from cairn.errors import CairnError, ValidationError
from cairn.server._backend import Backend
from cairn.server._log import RequestLog, withheld
from cairn.server._log import configure as configure_logging
from cairn.server._openapi import declare_errors
from cairn.server._routes import ROUTERS
from cairn.server._sweeper import Sweeper
from cairn.service import API, error_body, status_of

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyLimit:
    """Refuses request bodies over the limit (413) before they are read in full."""

    def __init__(self, app: ASGIApp, json_limit: int, batch_limit: int) -> None:
        self.app = app
        self.json_limit = json_limit
        self.batch_limit = batch_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        if path.endswith("/content"):  # a whole upload: its declared size is checked instead
            await self.app(scope, receive, send)
            return
        limit = (
            self.batch_limit
            if path.endswith(("/blobs/batch", "/parts")) or "/parts/" in path
            else self.json_limit
        )
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(send, limit)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge(limit)
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await _too_large(send, limit)


class _TooLarge(Exception):
    def __init__(self, limit: int) -> None:
        self.limit = limit


async def _too_large(send: Send, limit: int) -> None:
    import json

    body = json.dumps(
        {"error": {"type": "ValidationError", "message": f"request body over {limit} bytes"}}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_app(backend: Backend) -> FastAPI:
    """The app over ``backend`` (see ``Backend.open``)."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Runs under a real ASGI server only (uvicorn), not for in-process test clients.
        from cairn.server._collector import Collector

        interval = backend.config.gc_interval
        collector = Collector(backend, interval, backend.config.gc_grace) if interval else None
        if collector is not None:
            collector.start()
        # Killed writers' leftovers (abandoned uploads, stale temp files): ``_sweeper``.
        config = backend.config
        sweeper = Sweeper(backend, config.sweep_interval, config.upload_max_age)
        sweeper.start()
        # What the process holds once started (the app, its modules, the catalog's engine) is
        # left out of the cyclic collector's passes from now on: a commit of 20,000 changes
        # makes some 100,000 objects, and each full pass they set off walked every object of
        # the process too (~0.1 s of such a commit's CPU, docs/design.md). None of it is freed
        # before the process ends anyway; what start-up left as garbage is collected first.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            if collector is not None:
                collector.stop()
            sweeper.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="cairn",
        version=__version__,
        description="Versioned ML artifacts: cairn's REST API. Every route needs an API key"
        " (`Authorization: Bearer <key>`).",
        openapi_url=None,  # served under /api/v1 behind the key check instead
        docs_url=None,
        redoc_url=None,
    )
    app.state.backend = backend

    @app.exception_handler(CairnError)
    async def cairn_error(request: Request, exc: CairnError) -> JSONResponse:
        if exc.public is not None:
            withheld(request.url.path, exc)  # the detail for the server's log, not the client
        return JSONResponse(error_body(exc), status_code=status_of(exc))

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()))
        err = ValidationError(f"bad request: {where}: {first.get('msg', 'invalid')}")
        return JSONResponse(error_body(err), status_code=400)

    for router in ROUTERS:  # their routes, not the routers (see ``_common.new_router``)
        app.router.routes.extend(router.routes)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:  # built once, with the answers FastAPI cannot see
            app.openapi_schema = declare_errors(generate(), API)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(
        BodyLimit,
        json_limit=backend.config.max_json_bytes,
        batch_limit=backend.config.max_batch_bytes + (1 << 20),
    )
    app.add_middleware(RequestLog)  # outermost: logs every answer, 413s included
    from cairn.server._ui import mount_ui

    mount_ui(app, backend)  # the web UI, behind the same keys, at / (after the API routes)
    configure_logging()
    return app
