"""The web UI inside ``cairn server``, behind the same API keys as the REST API.

``ServerUiBackend`` is the server's side of the UI contract (``cairn.ui.UiBackend``): a browser
signs in with an API key (kept in an HTTP-only cookie by the UI), and every page goes through the
same ``ScopedService`` as the REST routes (``_scoped.py``), so the UI sees and changes exactly what
that key may through the API: projects by grant, blobs of readable projects only, changes only with
write access.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

from cairn.errors import PermissionDeniedError
from cairn.server._auth import Principal as KeyPrincipal
from cairn.server._backend import Backend
from cairn.server._log import key_refused
from cairn.server._scoped import ScopedService
from cairn.ui import Principal, create_ui_app


class ServerUiBackend:
    """``cairn.ui.UiBackend`` over the server's API keys: sign in with a key; see what it sees."""

    def __init__(self, backend: Backend) -> None:
        self._b = backend
        self._principals: dict[str, KeyPrincipal] = {}
        self._services: dict[str, ScopedService] = {}
        self._lock = threading.Lock()

    @property
    def needs_login(self) -> bool:
        return True

    def anonymous(self) -> Principal | None:
        return None

    def authenticate(self, api_key: str) -> Principal | None:
        who = self._b.keys.check(api_key)  # cached by the key ring; a revoked key fails in ~2 s
        if who is None:
            key_refused("/login", api_key, "unknown, malformed or revoked")
            return None
        with self._lock:
            self._principals[who.key_id] = who
        return Principal(id=who.key_id, name=who.user)

    def _key(self, principal: Principal) -> KeyPrincipal:
        with self._lock:
            who = self._principals.get(principal.id)
        if who is None:
            raise PermissionDeniedError("sign in again: this session's key is not known")
        return who

    def service_for(self, principal: Principal) -> ScopedService:
        who = self._key(principal)
        with self._lock:
            svc = self._services.get(who.key_id)
            if svc is None or svc.who != who:
                svc = self._services[who.key_id] = ScopedService(self._b, who)
            return svc

    def can_write(self, principal: Principal, entity: str, project: str) -> bool:
        return self.service_for(principal).may(entity, project, "write")


def ui_secret(backend: Backend) -> bytes:
    """The secret that signs the UI's CSRF tokens; the same in every server process of one
    deployment (``CAIRN_SERVER_SECRET``, else derived from its configuration)."""
    c = backend.config
    if c.secret:
        return c.secret.encode()
    basis = f"cairn-ui\0{c.db}\0{c.store}\0{c.admin_key or ''}"
    return hashlib.sha256(basis.encode()).digest()


def mount_ui(app: Any, backend: Backend) -> None:
    """Serve the web UI at ``/`` (after the API routes, so ``/api/v1`` keeps precedence)."""
    secure = not backend.config.insecure_cookies
    app.mount(
        "/",
        create_ui_app(ServerUiBackend(backend), secret=ui_secret(backend), secure_cookies=secure),
    )
