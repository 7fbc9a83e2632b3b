"""Sign in with an API key (kept in an HTTP-only cookie) and sign out."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from cairn.ui._web import KEY_COOKIE, form_data, render_page, safe_next, ui_state, urls_for

router = APIRouter(include_in_schema=False)

SESSION_SECONDS = 14 * 24 * 3600


@router.get("/-/login")
def login_form(request: Request, next: str = "") -> Response:
    ui = ui_state(request)
    if not ui.backend.needs_login:
        return RedirectResponse(safe_next(next, request), status_code=303)
    return render_page(request, "login.html", next=safe_next(next, request), error=None)


@router.post("/-/login")
async def login(request: Request) -> Response:
    fields = await form_data(request)
    ui = ui_state(request)
    target = safe_next(fields.get("next"), request)
    key = fields.get("api_key", "").strip()
    principal = await run_in_threadpool(ui.backend.authenticate, key) if key else None
    if principal is None:
        return render_page(
            request, "login.html", 401, next=target, error="That API key is not valid."
        )
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        KEY_COOKIE,
        key,
        max_age=SESSION_SECONDS,
        httponly=True,
        secure=ui.secure_cookies,
        samesite="lax",
        path=urls_for(request).root or "/",
    )
    return response


@router.post("/-/logout")
async def logout(request: Request) -> Response:
    await form_data(request)
    ui = ui_state(request)
    urls = urls_for(request)
    response = RedirectResponse(urls.login() if ui.backend.needs_login else urls.home(), 303)
    response.delete_cookie(
        KEY_COOKIE,
        path=urls.root or "/",
        secure=ui.secure_cookies,
        httponly=True,
        samesite="lax",
    )
    return response
