"""Routes: API keys (server admins)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from cairn.core import validate_project
from cairn.errors import ValidationError
from cairn.server._auth import ANY, ROLES, Grant, parse_project
from cairn.server._common import Svc, new_router

router = new_router()


# -- API keys (server admins) ------------------------------------------------------------------


class KeyIn(BaseModel):
    user: str
    project: str | None = None
    role: str = "write"


@router.post("/keys", summary="Create an API key (server admins)")
def create_key(body: KeyIn, svc: Svc) -> dict[str, Any]:
    svc.require_admin()  # before the body is looked at
    if body.role not in ROLES:
        raise ValidationError(f"role must be one of {', '.join(ROLES)}, not {body.role!r}")
    validate_project(body.user, "user")
    if body.project is None:
        grant = (
            Grant(ANY, ANY, "admin") if body.role == "admin" else Grant(body.user, ANY, body.role)
        )
    else:
        entity, project = parse_project(body.project, body.user)
        grant = Grant(entity, project, body.role)
    key_id, key = svc.create_key(body.user, [grant])
    return {
        "id": key_id,
        "key": key,
        "user": body.user,
        "grants": [{"entity": grant.entity, "project": grant.project, "role": grant.role}],
    }


@router.delete("/keys/{key_id}", summary="Revoke an API key (server admins)")
def revoke_key(key_id: str, svc: Svc) -> dict[str, Any]:
    svc.revoke_key(key_id)
    return {}


@router.get("/keys", summary="Every API key, without secrets (server admins)")
def list_keys(svc: Svc) -> list[dict[str, Any]]:
    return svc.list_keys()
