"""What the web UI needs from whoever serves it: who is asking, and a Service for them.

The UI is a thin adapter over ``cairn.service.Service``. It never decides on its own what a user
may see: every page reads through ``UiBackend.service_for(principal)``, a Service limited to what
that principal may read, and writes (aliases) only where ``can_write`` says so. ``cairn ui`` uses
``LocalUiBackend`` (one user on localhost, no login); ``cairn server`` supplies a backend over its
API keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from cairn.service import Service


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for.

    ``id`` is whatever the backend needs to find the principal's rights again (a user id, an API
    key id; never the key itself); ``name`` is shown in the page header.
    """

    id: str
    name: str


@runtime_checkable
class UiBackend(Protocol):
    """The contract between the UI and the server that mounts it (see docs/design.md, "Web UI").

    Implementations must be safe to call from several threads at once.
    """

    @property
    def needs_login(self) -> bool:
        """True when requests must carry an API key (the login form sets it in a cookie).

        False means every request acts for ``anonymous()`` and no login page is shown."""

    def anonymous(self) -> Principal | None:
        """The principal of requests without a key (None: such requests are sent to login)."""

    def authenticate(self, api_key: str) -> Principal | None:
        """The principal an API key stands for, or None if the key is unknown or revoked.

        Called on every request that carries the cookie, so revoking a key logs its sessions
        out at once; cache inside the backend if lookups are slow."""

    def service_for(self, principal: Principal) -> Service:
        """A Service that reads only what ``principal`` may read.

        Projects it may not read are absent from ``list_projects`` and from what ``search``
        finds and counts, and raise ``cairn.errors.NotFoundError`` or
        ``PermissionDeniedError`` when named."""

    def can_write(self, principal: Principal, entity: str, project: str) -> bool:
        """Whether ``principal`` may change versions of ``entity/project`` (aliases)."""


class LocalUiBackend:
    """One user on this machine, over the embedded store: no login, may read and write all."""

    def __init__(self, service: Service) -> None:
        self._service = service
        self._principal = Principal(id="local", name=service.default_entity)

    @property
    def needs_login(self) -> bool:
        return False

    def anonymous(self) -> Principal | None:
        return self._principal

    def authenticate(self, api_key: str) -> Principal | None:
        return None

    def service_for(self, principal: Principal) -> Service:
        return self._service

    def can_write(self, principal: Principal, entity: str, project: str) -> bool:
        return True
