"""Whole operations on the store, one call each, for the command line and for scripts.

Each function resolves names the way ``cairn.Api`` does (``[[entity/]project/]name[:alias]``,
defaults from ``CAIRN_ENTITY``/``CAIRN_PROJECT``), does one thing, and returns a value the caller
can print or turn into JSON (``to_json``/``version_json``). The command line (``cairn.cli``) is a
thin layer over these.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

from cairn.core import (
    COMMITTED,
    ManifestDiff,
    ManifestEntry,
    RegistryRecord,
    VersionRecord,
    diff_trees,
    iso_time,
    parse_artifact_path,
    validate_alias,
    validate_aliases,
    validate_project,
)
from cairn.errors import UsageError, ValidationError
from cairn.sdk import _progress
from cairn.sdk._artifact import Artifact
from cairn.sdk._resolver import NameResolver
from cairn.sdk._session import current_service, current_session
from cairn.sdk._settings import Settings
from cairn.sdk._values import Policy, link_target
from cairn.service import (
    DEFAULT_GRACE_SECONDS,
    GcReport,
    LocalService,
    ProgressFactory,
    VerifyReport,
)


def version_json(rec: VersionRecord) -> dict[str, Any]:
    """A version as plain JSON (what ``--json`` prints)."""
    return {
        "id": rec.id,
        "entity": rec.entity,
        "project": rec.project,
        "name": rec.name,
        "type": rec.type,
        "version": rec.version,
        "qualified_name": rec.qualified_name,
        "state": rec.state,
        "aliases": list(rec.aliases),
        "tags": list(rec.tags),
        "digest": rec.digest,
        "files": rec.file_count,
        "size": rec.size,
        "description": rec.description,
        "metadata": dict(rec.metadata),
        "created_at": iso_time(rec.created_at),
        "created_by": rec.created_by,
        "base_version_id": rec.base_version_id,
        "source_version_id": rec.source_version_id,  # a registry link's source
        "ttl_seconds": rec.ttl_seconds,
        "expires_at": None
        if rec.ttl_seconds is None
        else iso_time(rec.created_at + rec.ttl_seconds),
    }


def entry_json(entry: ManifestEntry) -> dict[str, Any]:
    row: dict[str, Any] = {"path": entry.path, "digest": entry.digest, "size": entry.size}
    if entry.ref is not None:
        row["ref"] = entry.ref
    if entry.extra:
        row["extra"] = dict(entry.extra)
    return row


# -- names ---------------------------------------------------------------------------------------


# -- put and get ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PutResult:
    version: VersionRecord
    created: bool  # False when identical content already was a version (it got the aliases)

    def to_json(self) -> dict[str, Any]:
        return {**version_json(self.version), "created": self.created}


def put_path(
    path: str,
    name: str | None = None,
    *,
    type: str = "dataset",
    aliases: Sequence[str] = (),
    description: str | None = None,
    policy: str = "mutable",
) -> PutResult:
    """Log a file or a directory as a new version of ``[[entity/]project/]name``.

    ``name`` defaults to the base name of ``path``. The version is logged by a run of job type
    ``cli_put``. Identical content makes no new version: the existing one gets the aliases.
    """
    local = os.path.abspath(path)
    if not os.path.exists(local):
        raise ValidationError(f"cannot put {path!r}: no such file or directory")
    ref = parse_artifact_path(name if name is not None else os.path.basename(local.rstrip("/")))
    if ref.label is not None:
        raise ValidationError(
            f"the name {name!r} includes ':{ref.label}'; give the name alone and aliases with"
            " --alias"
        )
    if policy not in ("mutable", "immutable"):
        raise ValidationError(f"invalid policy {policy!r}: use 'mutable' or 'immutable'")
    from cairn.sdk._init import init

    artifact = Artifact(ref.name, type, description=description)
    if os.path.isdir(local):
        artifact.add_dir(local, policy=cast(Policy, policy))
    else:
        artifact.add_file(local, policy=cast(Policy, policy))
    with (
        init(
            project=ref.project, entity=ref.entity, job_type="cli_put", config={"path": local}
        ) as run,
        warnings.catch_warnings(),
    ):
        # The result says whether the content was new; no warning is needed on top.
        warnings.simplefilter("ignore", UserWarning)
        run.log_artifact(artifact, aliases=list(aliases))
    record = artifact._record
    assert record is not None
    # A new version is created by this run; a reused one keeps its first creator.
    return PutResult(record, created=record.created_by == run.id)


def get_path(
    path: str, *, root: str | None = None, path_prefix: str | None = None
) -> tuple[VersionRecord, str]:
    """Download ``[[entity/]project/]name[:alias]`` (or only the entries under ``path_prefix``)
    to ``root`` (default ``$CAIRN_ARTIFACT_DIR/<name>:<version>``); returns the version and root."""
    scope = NameResolver()
    record = scope.resolve(path)
    artifact = Artifact._from_record(scope.session, record)
    return record, artifact.download(root=root, path_prefix=path_prefix)


# -- listings ------------------------------------------------------------------------------------


def list_versions(path: str, *, include_pending: bool = False) -> list[VersionRecord]:
    """The versions of ``[[entity/]project/]name``, newest first."""
    scope = NameResolver()
    entity, project, name, label = scope.split(path)
    if label is not None:
        raise ValidationError(f"give a collection, not a version: {path.split(':')[0]!r}")
    records = scope.service.list_versions(entity, project, name, include_pending=include_pending)
    records.sort(key=lambda r: (r.index is not None, r.index or 0, r.created_at), reverse=True)
    return records


def list_files(path: str, *, prefix: str = "") -> tuple[VersionRecord, Iterator[ManifestEntry]]:
    """The version ``path`` names and its entries in path order (read page by page)."""
    scope = NameResolver()
    record = scope.resolve(path)
    assert record.digest is not None
    reader = scope.session.reader
    if prefix:
        return record, reader.iter_prefix(record.digest, prefix)
    return record, reader.iter_from(record.digest)


# -- diff ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DiffReport:
    old: VersionRecord
    new: VersionRecord
    diff: ManifestDiff

    @property
    def added_bytes(self) -> int:
        return sum(e.size or 0 for e in self.diff.added)

    @property
    def removed_bytes(self) -> int:
        return sum(e.size or 0 for e in self.diff.removed)

    @property
    def modified_bytes(self) -> int:
        """Change in size of the modified entries (new minus old)."""
        return sum((n.size or 0) - (o.size or 0) for o, n in self.diff.modified)

    def to_json(self) -> dict[str, Any]:
        return {
            "old": self.old.qualified_name,
            "new": self.new.qualified_name,
            "added": [entry_json(e) for e in self.diff.added],
            "removed": [entry_json(e) for e in self.diff.removed],
            "modified": [
                {
                    "path": n.path,
                    "old_size": o.size,
                    "new_size": n.size,
                    "old_digest": o.digest,
                    "new_digest": n.digest,
                }
                for o, n in self.diff.modified
            ],
            "totals": {
                "added": len(self.diff.added),
                "added_bytes": self.added_bytes,
                "removed": len(self.diff.removed),
                "removed_bytes": self.removed_bytes,
                "modified": len(self.diff.modified),
                "modified_bytes": self.modified_bytes,
            },
        }


def diff_versions(old: str, new: str) -> DiffReport:
    """What changed from version ``old`` to version ``new``. ``new`` may leave out the entity
    and project: they default to ``old``'s."""
    scope = NameResolver()
    old_rec = scope.resolve(old)
    new_rec = scope.resolve_beside(new, old_rec)
    assert old_rec.digest is not None and new_rec.digest is not None
    diff = diff_trees(scope.session.reader, old_rec.digest, new_rec.digest)
    return DiffReport(old_rec, new_rec, diff)


# -- aliases and deletion ------------------------------------------------------------------------


def add_alias(path: str, alias: str) -> VersionRecord:
    """Give the version ``path`` names the alias (moving it from another version)."""
    scope = NameResolver()
    record = scope.resolve(path)
    return scope.service.add_alias(record.id, validate_alias(alias))


def remove_alias(path: str, alias: str) -> VersionRecord:
    """Take ``alias`` off the version ``path`` names."""
    scope = NameResolver()
    record = scope.resolve(path)
    return scope.service.remove_alias(record.id, alias)


def link_version(path: str, target: str, aliases: Sequence[str] = ()) -> VersionRecord:
    """Link the version ``path`` names into ``target`` (``wandb-registry-<name>/<collection>``
    or ``[[entity/]project/]collection``), as ``Artifact.link`` does."""
    scope = NameResolver()
    record = scope.resolve(path)
    entity, project, name = link_target(target, record.entity, record.project)
    return scope.service.link_version(record.id, entity, project, name, validate_aliases(aliases))


def list_registries() -> list[RegistryRecord]:
    """The registries (``model`` and ``dataset`` always exist)."""
    return current_service().list_registries()


def delete_version(path: str, *, delete_aliases: bool = False) -> VersionRecord:
    """Delete the version ``path`` names (which must name one: ``:vN`` or ``:alias``).

    A version with aliases of its own is refused unless ``delete_aliases``. Its number is never
    reused; its blobs are removed by the next ``cairn gc`` unless another version uses them.
    """
    scope = NameResolver()
    entity, project, name, label = scope.split(path)
    if label is None:
        raise ValidationError(
            f"name the version to delete, e.g. {project}/{name}:v0 (or :alias); {path!r} names"
            " the whole collection"
        )
    record = scope.service.resolve(entity, project, name, label)
    if record.aliases and not delete_aliases:
        raise UsageError(
            f"{record.qualified_name} has aliases {', '.join(record.aliases)}; remove them first"
            " or delete them with it (--delete-aliases, or delete_aliases=True)"
        )
    scope.service.delete_version(record.id, delete_aliases=delete_aliases)
    return scope.service.get_version(record.id)


# -- maintenance ---------------------------------------------------------------------------------


def _local_service(what: str, service: LocalService | None = None) -> LocalService:
    """The store ``what`` works on: ``service`` (a server's catalog and store), else the
    embedded store, which must exist (an empty one would check nothing and print "ok")."""
    if service is not None:
        return service
    settings = Settings.from_env()
    if settings.base_url:
        raise UsageError(
            f"{what} works on a store directly, and CAIRN_BASE_URL points to a server: run it on"
            " the server's machine with --db and --store (or CAIRN_SERVER_DB and"
            " CAIRN_SERVER_STORE), or as a server admin with `POST /api/v1/admin/gc` or"
            " `/admin/verify`"
        )
    if not os.path.exists(os.path.join(settings.dir, "cairn-store.json")):
        raise UsageError(
            f"there is no cairn store at {settings.dir} (CAIRN_DIR), so {what} has nothing to"
            " check; for a server's store give --db and --store (or CAIRN_SERVER_DB and"
            " CAIRN_SERVER_STORE)"
        )
    found = current_session(settings).embedded
    if found is None:  # not reached: CAIRN_BASE_URL is refused above
        raise UsageError(f"{what} works on an embedded store, and this session is not one")
    return found


def collect_garbage(
    *,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
    dry_run: bool = False,
    service: LocalService | None = None,
) -> GcReport:
    """Remove blobs of the store no version refers to (see ``LocalService.collect_garbage``);
    ``service`` is another store than the embedded one (a server's)."""
    if grace_seconds < 0:
        raise ValidationError(f"the grace period must be zero or more, got {grace_seconds}")
    return _local_service("cairn gc", service).collect_garbage(
        grace_seconds=grace_seconds, dry_run=dry_run, progress=_progress_of(Settings.from_env())
    )


def verify_store(
    scope_path: str | None = None, *, service: LocalService | None = None
) -> VerifyReport:
    """Re-hash stored blobs and check every committed version's blobs exist.

    ``scope_path`` narrows it: ``project``, ``[entity/]project/name`` (every version) or
    ``[entity/]project/name:version``. Without it the whole store is checked, every blob re-hashed.
    """
    service = _local_service("cairn verify", service)
    versions: list[VersionRecord] | None = None
    if scope_path:
        scope = NameResolver()
        if "/" not in scope_path and ":" not in scope_path:
            project = validate_project(scope_path)
            versions = []
            for coll in service.list_collections(scope.entity, project):
                versions += service.list_versions(scope.entity, project, coll.name)
            if not versions:
                raise ValidationError(f"project {scope.entity}/{project} has no versions to verify")
        else:
            if "/" not in scope_path:
                raise ValidationError(
                    f"invalid scope {scope_path!r}: give project, project/name or"
                    " project/name:version"
                )
            entity, project, name, label = scope.split(scope_path)
            if label is None:
                versions = service.list_versions(entity, project, name)
            else:
                versions = [service.resolve(entity, project, name, label)]
        versions = [v for v in versions if v.state == COMMITTED]
    return service.verify(versions, progress=_progress_of(Settings.from_env()))


def _progress_of(settings: Settings) -> ProgressFactory:
    """``_progress.progress`` showing as ``settings`` say."""
    return functools.partial(_progress.progress, settings=settings)
