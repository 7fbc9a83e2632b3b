"""Look-ups several pages share."""

from __future__ import annotations

from cairn.core import CollectionRecord, RunRecord, VersionRecord, validate_artifact_name
from cairn.errors import (
    ArtifactNotFoundError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from cairn.service import SearchRequest
from cairn.ui._web import Ctx


def find_collection(
    ctx: Ctx, entity: str, project: str, type_name: str, name: str
) -> CollectionRecord:
    # Through search: it counts the versions of this collection only (list_collections counts
    # those of every collection of the project). list_types first: a cheap read that any
    # Service refuses for a project the user may not read.
    if type_name in ctx.service.list_types(entity, project) and is_artifact_name(name):
        found = ctx.service.search(
            SearchRequest(
                query=f"name:{name}", kinds=("collection",), projects=((entity, project),)
            )
        )
        for c in found.collections:
            if c.name == name and c.type == type_name:
                return c
    raise ArtifactNotFoundError(f"no artifact {entity}/{project}/{name} of type {type_name!r}")


def is_artifact_name(name: str) -> bool:
    try:
        validate_artifact_name(name)
    except ValidationError:
        return False
    return True


def find_version(
    ctx: Ctx, entity: str, project: str, type_name: str, name: str, label: str
) -> VersionRecord:
    """The committed version ``name:label`` (a version number or an alias) of that type."""
    version = ctx.service.resolve(entity, project, name, label)
    if version.type != type_name:
        raise ArtifactNotFoundError(f"no artifact {entity}/{project}/{name} of type {type_name!r}")
    return version


def maybe_run(ctx: Ctx, entity: str, project: str, run_id: str | None) -> RunRecord | None:
    """The run, or None if there is none or the user may not read it."""
    if not run_id:
        return None
    try:
        return ctx.service.get_run(entity, project, run_id)
    except (NotFoundError, PermissionDeniedError):
        return None


def maybe_version(ctx: Ctx, version_id: str | None) -> VersionRecord | None:
    if not version_id:
        return None
    try:
        return ctx.service.get_version(version_id)
    except (NotFoundError, PermissionDeniedError):
        return None
