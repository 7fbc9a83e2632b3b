"""The web UI as an ASGI application: ``create_ui_app(backend)``."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from cairn.errors import (
    AuthenticationError,
    CairnError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from cairn.ui._backend import UiBackend
from cairn.ui._web import (
    CSRF_COOKIE,
    LRU,
    STATIC_DIR,
    LoginRequired,
    UiState,
    make_templates,
    principal_of,
    render_page,
    ui_state,
    urls_for,
)
from cairn.ui.views import auth, collections, diff, lineage, projects, runs, search, versions

# Pages load only this origin's styles, scripts and images; nothing inline, no frames, no
# plugins. A name or file that slips past escaping still cannot run script.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def create_ui_app(
    backend: UiBackend,
    *,
    secret: bytes | None = None,
    secure_cookies: bool = True,
    allowed_hosts: Sequence[str] | None = None,
) -> FastAPI:
    """The web UI over ``backend``, as an app to serve or mount (at ``/`` or under a prefix).

    ``secret`` signs CSRF tokens: several server processes behind one address must share it (a
    random one is made otherwise). ``secure_cookies`` marks cookies ``Secure`` (HTTPS only);
    turn it off only for plain-HTTP servers (``cairn ui`` on localhost). ``allowed_hosts``
    limits the ``Host`` header requests may carry (DNS-rebinding protection for local servers).
    """
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, title="cairn UI")
    app.state.cairn_ui = UiState(
        backend=backend,
        secret=secret or secrets.token_bytes(32),
        secure_cookies=secure_cookies,
        templates=make_templates(),
        # Decoded manifest pages shared by all requests: 64 (~32,000 entries), as the SDK keeps;
        # 256 held as many entries as a whole 100,000-file version.
        pages=LRU(64),
        listings=LRU(256),
    )
    app.mount("/-/static", StaticFiles(directory=STATIC_DIR), name="static")
    # /-/search before the projects' /{entity}/{project}, which would match it too.
    for module in (auth, search, projects, collections, versions, diff, lineage, runs):
        app.include_router(module.router)

    @app.middleware("http")
    async def security(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        ui = ui_state(request)
        new_csrf = None
        if not request.cookies.get(CSRF_COOKIE):
            new_csrf = secrets.token_urlsafe(32)
            request.state.csrf_cookie = new_csrf
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if new_csrf is not None:
            response.set_cookie(
                CSRF_COOKIE,
                new_csrf,
                httponly=True,
                samesite="strict",
                secure=ui.secure_cookies,
                path=urls_for(request).root or "/",
            )
        return response

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        urls = urls_for(request)
        if request.method != "GET":
            return _error_page(request, 401, "Sign in with an API key first.")
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(urls.login(here), status_code=303)

    @app.exception_handler(CairnError)
    async def cairn_error(request: Request, exc: CairnError) -> Response:
        status = 500
        if isinstance(exc, NotFoundError):
            status = 404
        elif isinstance(exc, PermissionDeniedError):
            status = 403
        elif isinstance(exc, AuthenticationError):
            status = 401
        elif isinstance(exc, ValidationError):
            status = 400
        return _error_page(request, status, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        messages = {404: "There is no page at this address.", 405: "This page cannot do that."}
        return _error_page(request, exc.status_code, messages.get(exc.status_code, exc.detail))

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(request: Request, exc: RequestValidationError) -> Response:
        where = ", ".join(".".join(str(p) for p in e.get("loc", ())) for e in exc.errors())
        return _error_page(request, 400, f"Invalid parameter: {where or 'the request'}.")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        # The server logs the traceback (Starlette re-raises after this response is sent).
        return _error_page(request, 500, "Something went wrong on the server; see its log.")

    if allowed_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    return app


def _error_page(request: Request, status: int, message: str) -> HTMLResponse:
    ui = ui_state(request)
    try:
        principal = principal_of(request, ui)
    except CairnError:
        principal = None
    response = render_page(request, "error.html", status, principal, status=status, message=message)
    response.headers.update(SECURITY_HEADERS)
    return response
