"""What every page shares: the request's principal and Service, rendering, URLs, CSRF, caches."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qs, quote

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from cairn.core import (
    COUNT_CAP,
    Index,
    Leaf,
    PageReader,
    RunRecord,
    VersionRecord,
    decode_node,
    display_time,
    format_size,
    short_digest,
)
from cairn.errors import PermissionDeniedError, ValidationError
from cairn.service import Service
from cairn.ui._backend import Principal, UiBackend
from cairn.ui._tree import DirListing

KEY_COOKIE = "cairn_key"
CSRF_COOKIE = "cairn_csrf"
CSRF_FIELD = "csrf_token"
MAX_FORM_BYTES = 64 * 1024

_HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATES_DIR = os.path.join(_HERE, "templates")
STATIC_DIR = os.path.join(_HERE, "static")

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    """A small thread-safe least-recently-used cache."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)


class SharedPageReader(PageReader):
    """A PageReader for one request whose decoded pages go to a cache shared by all requests.

    Pages are named by their content, so a cached page is valid forever. Sharing it between
    principals is safe: a request only ever asks for pages below a version root that its own
    Service returned, and it loads what is not cached through that Service.
    """

    def __init__(self, load: Callable[[str], bytes], shared: LRU[str, Leaf | Index]) -> None:
        super().__init__(load, capacity=8)
        self._fetch = load
        self._shared = shared

    def node(self, digest: str) -> Leaf | Index:
        node = self._shared.get(digest)
        if node is None:
            node = decode_node(self._fetch(digest))
            self._shared.put(digest, node)
        return node


class LoginRequired(Exception):
    """The request needs a principal and has none: send it to the login form."""


@dataclass
class UiState:
    """Per-application state: the backend, templates, secrets and caches."""

    backend: UiBackend
    secret: bytes
    secure_cookies: bool
    templates: jinja2.Environment
    pages: LRU[str, Leaf | Index]
    listings: LRU[tuple[str, str, str], DirListing]

    def csrf_token(self, cookie_value: str) -> str:
        return hmac.new(self.secret, cookie_value.encode(), hashlib.sha256).hexdigest()


class Urls:
    """Every URL of the UI, built in one place (each part is percent-encoded)."""

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/")

    def _join(self, *parts: str) -> str:
        return self.root + "/" + "/".join(quote(p, safe="") for p in parts)

    def home(self) -> str:
        return self.root + "/"

    def static(self, name: str) -> str:
        return f"{self.root}/-/static/{quote(name)}"

    def login(self, next_url: str | None = None) -> str:
        url = f"{self.root}/-/login"
        return url if not next_url else f"{url}?next={quote(next_url, safe='')}"

    def logout(self) -> str:
        return f"{self.root}/-/logout"

    def search(self, query: str = "", kind: str = "", page: int = 1) -> str:
        url = f"{self.root}/-/search"
        params = [("q", query)] + ([("kind", kind)] if kind else [])
        params += [("page", str(page))] if page > 1 else []
        return url + "?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in params)

    def entity(self, entity: str) -> str:
        return self._join(entity)

    def project(self, entity: str, project: str) -> str:
        return self._join(entity, project)

    def collection(self, entity: str, project: str, type_name: str, name: str) -> str:
        return self._join(entity, project, "artifacts", type_name, name)

    def version(self, v: VersionRecord, label: str | None = None) -> str:
        return self._join(v.entity, v.project, "artifacts", v.type, v.name, label or _label(v))

    def version_part(self, v: VersionRecord, part: str, path: str = "") -> str:
        url = self.version(v) + "/" + part
        return url + "/" + quote(path, safe="/") if path else url

    def files(self, v: VersionRecord, directory: str = "", start: str = "") -> str:
        url = self.version_part(v, "files", directory)
        return f"{url}?start={quote(start, safe='')}" if start else url

    def file(self, v: VersionRecord, path: str) -> str:
        return self.version_part(v, "file", path)

    def raw(self, v: VersionRecord, path: str, inline: bool = False) -> str:
        url = self.version_part(v, "raw", path)
        return url + "?inline=1" if inline else url

    def diff(self, v: VersionRecord, against: VersionRecord | None = None) -> str:
        url = self.version_part(v, "diff")
        return f"{url}?against={quote(_label(against), safe='')}" if against else url

    def lineage(self, v: VersionRecord) -> str:
        return self.version_part(v, "lineage")

    def run(self, entity: str, project: str, run_id: str) -> str:
        return self._join(entity, project, "runs", run_id)

    def run_of(self, r: RunRecord) -> str:
        return self.run(r.entity, r.project, r.id)

    def run_lineage(self, r: RunRecord) -> str:
        return self.run_of(r) + "/lineage"


def _label(v: VersionRecord) -> str:
    return v.version or v.id


@dataclass
class Ctx:
    """One request: who asks, the Service that answers for them, and how to render."""

    request: Request
    ui: UiState
    principal: Principal
    service: Service
    urls: Urls

    def reader(self) -> PageReader:
        return SharedPageReader(self.service.read_blob, self.ui.pages)

    def can_write(self, entity: str, project: str) -> bool:
        return self.ui.backend.can_write(self.principal, entity, project)

    def render(self, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
        return render_page(self.request, template, status_code, self.principal, **values)


def render_page(
    request: Request,
    template: str,
    status_code: int = 200,
    principal: Principal | None = None,
    **values: Any,
) -> HTMLResponse:
    """Render a template with what the layout needs (the user, URLs, the CSRF token)."""
    ui = ui_state(request)
    html = ui.templates.get_template(template).render(
        urls=urls_for(request),
        principal=principal,
        needs_login=ui.backend.needs_login,
        csrf_field=CSRF_FIELD,
        csrf_token=ui.csrf_token(csrf_cookie_value(request)),
        **values,
    )
    return HTMLResponse(html, status_code=status_code)


def urls_for(request: Request) -> Urls:
    return Urls(str(request.scope.get("root_path", "")))


def csrf_cookie_value(request: Request) -> str:
    """The browser's CSRF cookie (set by the middleware on its first request)."""
    value = getattr(request.state, "csrf_cookie", None) or request.cookies.get(CSRF_COOKIE, "")
    return str(value)


def safe_next(value: str | None, request: Request) -> str:
    """A local URL to go to after a form, or the home page (never another site)."""
    home = urls_for(request).home()
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return home
    if any(ord(c) < 32 for c in value):
        return home
    return value


def ui_state(request: Request) -> UiState:
    state: UiState = request.app.state.cairn_ui
    return state


def principal_of(request: Request, ui: UiState) -> Principal | None:
    backend = ui.backend
    if backend.needs_login:
        key = request.cookies.get(KEY_COOKIE)
        if key:
            principal = backend.authenticate(key)
            if principal is not None:
                return principal
    return backend.anonymous()


def page_context(request: Request) -> Ctx:
    """FastAPI dependency of every page: the principal (or a redirect to login) and its Service."""
    ui = ui_state(request)
    principal = principal_of(request, ui)
    if principal is None:
        raise LoginRequired()
    return Ctx(
        request=request,
        ui=ui,
        principal=principal,
        service=ui.backend.service_for(principal),
        urls=urls_for(request),
    )


async def form_data(request: Request) -> dict[str, str]:
    """The fields of a url-encoded form (the last value of each), CSRF-checked."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise ValidationError("form too large")
    try:
        fields = {k: v[-1] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
    except UnicodeDecodeError:
        raise ValidationError("form is not valid UTF-8") from None
    check_csrf(request, fields.get(CSRF_FIELD, ""))
    return fields


def check_csrf(request: Request, token: str) -> None:
    """A POST must carry the token derived from this browser's CSRF cookie, from this origin."""
    ui = ui_state(request)
    cookie = request.cookies.get(CSRF_COOKIE, "")
    expected = ui.csrf_token(cookie) if cookie else ""
    if not cookie or not hmac.compare_digest(token, expected):
        raise CsrfError("the form expired or came from another site; reload the page and retry")
    origin = request.headers.get("origin")
    if origin and origin != "null":
        host = request.headers.get("host", "")
        if origin.split("://", 1)[-1] != host:
            raise CsrfError("the form came from another site")


class CsrfError(PermissionDeniedError):
    """A POST without a valid CSRF token, or from another origin (HTTP 403)."""


# -- template helpers -------------------------------------------------------------------------


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def compact_json(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def hit_count(n: int) -> str:
    """A search's total: ``1,000+`` when it was counted no further (``COUNT_CAP``)."""
    return f"{COUNT_CAP:,}+" if n > COUNT_CAP else f"{n:,}"


def make_templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,  # every template is HTML: user content is always escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        size=format_size,
        ts=display_time,
        pretty_json=pretty_json,
        compact_json=compact_json,
        short_digest=short_digest,
        plural=plural,
        hits=hit_count,
    )
    return env


def mapping_rows(value: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """Top-level keys of metadata or config, each with its value as compact JSON."""
    return [(str(k), compact_json(v)) for k, v in sorted((value or {}).items())]
