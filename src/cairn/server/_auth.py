"""API keys and what they may do.

A key is ``cairn_<id>_<secret>``: ``id`` (16 hex digits) names the row, ``secret`` is 256 random
bits; the catalog keeps only the SHA-256 of the secret. A random 256-bit secret cannot be guessed
from its hash, so a slow password hash would add nothing but latency. The bootstrap admin key
(``CAIRN_ADMIN_KEY``) is compared in constant time and never stored.

A key carries grants: a role (``read`` < ``write`` < ``admin``) on one project, on every project
of an entity (project ``*``), or on everything (``*``/``*``). ``admin`` on everything makes a
server admin, who manages keys.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from cairn.catalog import ApiKeys, Catalog
from cairn.core import validate_project
from cairn.errors import (
    ArtifactNotFoundError,
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from cairn.service import key_id_of

ROLES = ("read", "write", "admin")
ANY = "*"
CACHE_SECONDS = 2.0  # a revoked key stops working on every server within this time


def _rank(role: str) -> int:
    return ROLES.index(role)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Grant:
    entity: str
    project: str
    role: str

    def covers(self, entity: str, project: str) -> bool:
        return self.entity in (ANY, entity) and self.project in (ANY, project)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's user and grants."""

    user: str
    key_id: str
    grants: tuple[Grant, ...]

    @property
    def is_admin(self) -> bool:
        return any(g.entity == ANY and g.project == ANY and g.role == "admin" for g in self.grants)

    def role_on(self, entity: str, project: str) -> str | None:
        best: str | None = None
        for g in self.grants:
            if g.covers(entity, project) and (best is None or _rank(g.role) > _rank(best)):
                best = g.role
        return best

    def require(self, entity: str, project: str, role: str) -> None:
        """Raise unless the key has ``role`` on the project. A key that may not even read it is
        told the project is not found, whether it exists or not (so the answer reveals nothing);
        403 is only for a key that may read but not do this."""
        have = self.role_on(entity, project)
        if have is None:
            raise ArtifactNotFoundError(project_not_found(entity, project))
        if _rank(have) < _rank(role):
            raise PermissionDeniedError(
                f"key of {self.user!r} has {have or 'no'} access to {entity}/{project};"
                f" this needs {role}"
            )

    def require_admin(self) -> None:
        if not self.is_admin:
            raise PermissionDeniedError(f"key of {self.user!r} is not a server admin key")

    @property
    def readable(self) -> tuple[tuple[str, str], ...]:
        """The (entity, project) patterns the key may read (``*``: any)."""
        return tuple((g.entity, g.project) for g in self.grants)

    @property
    def uploader(self) -> str:
        """The owner recorded for the blobs and uploads this key sends: ``key:<id>``, which no
        user name can be (``:`` is not allowed in names), so what a key sees follows its grants,
        never its user name."""
        return f"key:{self.key_id}"


def project_not_found(entity: str, project: str) -> str:
    return f"project {entity}/{project} not found (or this API key may not read it)"


def require_valid(principal: Principal | None) -> Principal:
    if principal is None:
        raise AuthenticationError("the API key is not valid (unknown, malformed or revoked)")
    return principal


def parse_project(value: str, user: str) -> tuple[str, str]:
    """``entity/project``, ``entity/*`` or ``project`` (in the user's own entity)."""
    entity, _, project = value.rpartition("/")
    entity = entity or user
    if entity != ANY:
        validate_project(entity, "entity")
    if project != ANY:
        validate_project(project)
    return entity, project


class KeyRing:
    """Creates, checks and revokes API keys (rows in the catalog)."""

    def __init__(self, catalog: Catalog, admin_key: str | None) -> None:
        self.rows = ApiKeys(catalog)
        self._admin_hash = _hash(admin_key) if admin_key else None
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    def create(self, user: str, grants: Iterable[Grant]) -> tuple[str, str]:
        """A new key for ``user``: (key id, the full key, shown once)."""
        validate_project(user, "user")
        grants = list(grants)
        for g in grants:
            if g.role not in ROLES:
                raise ValidationError(f"role must be one of {', '.join(ROLES)}, not {g.role!r}")
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        self.rows.insert(
            key_id, user, _hash(secret), [(g.entity, g.project, g.role) for g in grants]
        )
        return key_id, f"cairn_{key_id}_{secret}"

    def revoke(self, key_id: str) -> None:
        """Revoke a key, given its id (or the whole key, of which only the id is used)."""
        key_id = key_id_of(key_id)
        if not self.rows.revoke(key_id):
            raise NotFoundError(f"no active API key with id {key_id!r}")
        with self._lock:
            self._cache = {
                t: v for t, v in self._cache.items() if v[1] is None or v[1].key_id != key_id
            }

    def list(self) -> list[dict[str, object]]:
        return [
            {
                "id": k.id,
                "user": k.user,
                "created_at": k.created_at,
                "revoked": k.revoked,
                "grants": [{"entity": e, "project": p, "role": r} for e, p, r in k.grants],
            }
            for k in self.rows.all()
        ]

    @staticmethod
    def token_of(header: str | None) -> str:
        if not header or not header.lower().startswith("bearer "):
            raise AuthenticationError(
                "this server needs an API key: send 'Authorization: Bearer <key>'"
            )
        return header[7:].strip()

    def cached(self, token: str) -> tuple[bool, Principal | None]:
        """(hit, principal) from the cache, without touching the catalog."""
        with self._lock:
            hit = self._cache.get(token)
        if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
            return True, hit[1]
        return False, None

    def check(self, token: str) -> Principal | None:
        """Look the key up in the catalog (and remember the answer for a moment)."""
        principal = self._lookup(token)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[token] = (time.monotonic(), principal)
        return principal

    def authenticate(self, header: str | None) -> Principal:
        token = self.token_of(header)
        hit, principal = self.cached(token)
        if not hit:
            principal = self.check(token)
        return require_valid(principal)

    def _lookup(self, token: str) -> Principal | None:
        if self._admin_hash is not None and hmac.compare_digest(_hash(token), self._admin_hash):
            return Principal("admin", "bootstrap", (Grant(ANY, ANY, "admin"),))
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != "cairn" or len(parts[1]) != 16:
            return None
        key_id, secret = parts[1], parts[2]
        row = self.rows.get(key_id)
        if row is None or row.revoked:
            return None
        if not hmac.compare_digest(row.secret_hash, _hash(secret)):
            return None
        return Principal(row.user, key_id, tuple(Grant(*g) for g in row.grants))
