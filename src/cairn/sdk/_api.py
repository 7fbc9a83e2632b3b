"""The query API (W&B's ``wandb.Api``): find artifacts, collections, types and runs."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cairn.core import (
    ManifestDiff,
    diff_trees,
    validate_artifact_name,
    validate_project,
    validate_tags,
)
from cairn.errors import ArtifactNotFoundError, NotFoundError, ValidationError
from cairn.sdk._api_collections import ArtifactCollection, Artifacts, ArtifactType, cursor_index
from cairn.sdk._api_runs import ApiRun, Runs
from cairn.sdk._artifact import Artifact
from cairn.sdk._resolver import NameResolver

if TYPE_CHECKING:
    from cairn.sdk._registry import Registry


class Project:
    """A project (W&B's ``wandb.apis.public.Project``): its collections, types and runs."""

    def __init__(self, api: Api, entity: str, name: str) -> None:
        self._api = api
        self.entity = entity
        self.name = name

    @property
    def path(self) -> list[str]:
        return [self.entity, self.name]

    @property
    def id(self) -> str:
        return f"{self.entity}/{self.name}"

    def artifact_types(self, per_page: int = 50) -> list[ArtifactType]:
        return self._api.artifact_types(self.id)

    artifacts_types = artifact_types  # W&B's spelling

    def artifact_collections(
        self, type_name: str | None = None, per_page: int = 50
    ) -> list[ArtifactCollection]:
        return self._api.artifact_collections(self.id, type_name)

    collections = artifact_collections

    def runs(self, filters: Mapping[str, Any] | None = None, order: str = "+created_at") -> Runs:
        return self._api.runs(self.id, filters, order)

    def sweeps(self) -> list[Any]:
        """Sweeps are not part of cairn: always empty."""
        return []

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Project) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<Project {self.entity}/{self.name}>"


class Api:
    """Query the store: ``Api().artifact("project/name:alias")``, collections, types, runs.

    ``overrides`` may set ``entity`` and ``project``, used where a path leaves them out.
    """

    def __init__(
        self,
        overrides: Mapping[str, Any] | None = None,
        timeout: int | None = None,
        api_key: str | None = None,
    ) -> None:
        overrides = dict(overrides or {})
        self._names = NameResolver(entity=overrides.get("entity"), project=overrides.get("project"))
        self._session = self._names.session
        self._service = self._session.service
        self._entity: str = self._names.entity
        self._project: str = self._names.project

    @property
    def default_entity(self) -> str:
        return self._entity

    @property
    def default_project(self) -> str:
        return self._project

    def _split(self, path: str) -> tuple[str, str, str, str | None]:
        return self._names.split(path)

    def _project_path(self, path: str | None) -> tuple[str, str]:
        return self._names.project_path(path)

    def artifact(self, name: str, type: str | None = None) -> Artifact:
        """The version ``[[entity/]project/]name[:alias|:vN]`` (``latest`` when no label)."""
        record = self._names.resolve(name)
        if type is not None and record.type != type:
            raise ValidationError(f"artifact {name} has type {record.type!r}, not {type!r}")
        return Artifact._from_record(self._session, record)

    def artifact_exists(self, name: str, type: str | None = None) -> bool:
        try:
            self.artifact(name, type)
        except (NotFoundError, ValidationError):
            return False
        return True

    def artifacts(
        self,
        type_name: str,
        name: str,
        per_page: int = 50,
        tags: Sequence[str] | str | None = None,
        include_pending: bool = False,
        order: str = "-version",
        start: str | None = None,
    ) -> Artifacts:
        """The versions of a collection as W&B's paginated ``Artifacts`` (a list: iterate,
        ``len``, index), newest first. ``order`` is ``-version`` / ``+version`` (or
        ``-created_at`` / ``+created_at``); ``start`` is a ``cursor`` of an earlier answer: only
        the versions after it in that order (e.g. those logged since, with ``+version``)."""
        if not isinstance(per_page, int) or per_page < 1:
            raise ValidationError(f"per_page must be a positive integer, got {per_page!r}")
        if order.lstrip("+-") not in ("version", "created_at", "createdAt"):
            raise ValidationError(f"invalid order {order!r}: use '-version' or '+version'")
        entity, project, coll, _ = self._split(name)
        records = self._service.list_versions(
            entity, project, coll, include_pending=include_pending
        )
        if records and records[0].type != type_name:
            raise ValidationError(
                f"artifact {coll} has type {records[0].type!r}, not {type_name!r}"
            )
        if tags:
            wanted = set(validate_tags(tags))
            records = [r for r in records if wanted.issubset(r.tags)]
        newest_first = not order.startswith("+")
        if order.lstrip("+-") == "version":
            records.sort(key=lambda r: (r.index is not None, r.index or 0), reverse=newest_first)
        else:
            records.sort(key=lambda r: r.created_at, reverse=newest_first)
        if start is not None:
            after = cursor_index(start)
            records = [
                r
                for r in records
                if r.index is not None and (r.index < after if newest_first else r.index > after)
            ]
        return Artifacts([Artifact._from_record(self._session, r) for r in records], per_page)

    artifact_versions = artifacts

    def artifact_collections(
        self, project_name: str | None, type_name: str | None = None, per_page: int = 50
    ) -> list[ArtifactCollection]:
        entity, project = self._project_path(project_name)
        return [
            ArtifactCollection(self._session, c)
            for c in self._service.list_collections(entity, project, type_name)
        ]

    def artifact_collection(
        self,
        type_name: str | None = None,
        name: str | None = None,
        *,
        type: str | None = None,
        collection: str | None = None,
    ) -> ArtifactCollection:
        """The collection ``[[entity/]project/]name`` of that type. W&B's guide also writes
        ``artifact_collection(type=..., collection=...)``: both spellings work."""
        type_name = type_name if type_name is not None else type
        name = name if name is not None else collection
        if type_name is None or name is None:
            raise TypeError("artifact_collection() needs a type name and a collection name")
        entity, project, coll, _ = self._split(name)
        record = self._service.get_collection(entity, project, coll)
        if record.type != type_name:
            raise ArtifactNotFoundError(
                f"no {type_name} artifact named {coll} in {entity}/{project}; it has type"
                f" {record.type!r}"
            )
        return ArtifactCollection(self._session, record)

    def artifact_collection_exists(self, name: str, type: str) -> bool:
        try:
            self.artifact_collection(type, name)
        except NotFoundError:
            return False
        return True

    def artifact_types(self, project: str | None = None) -> list[ArtifactType]:
        entity, proj = self._project_path(project)
        return [ArtifactType(self, entity, proj, t) for t in self._service.list_types(entity, proj)]

    def artifact_type(self, type_name: str, project: str | None = None) -> ArtifactType:
        entity, proj = self._project_path(project)
        if type_name not in self._service.list_types(entity, proj):
            raise ArtifactNotFoundError(f"no artifact type {type_name!r} in {entity}/{proj}")
        return ArtifactType(self, entity, proj, type_name)

    def projects(self, entity: str | None = None, per_page: int = 200) -> list[Project]:
        """The projects of ``entity`` (default: every entity the store holds)."""
        return [Project(self, e, p) for e, p in self._service.list_projects(entity)]

    def project(self, name: str, entity: str | None = None) -> Project:
        """The project ``name`` (or ``entity/name``) of ``entity`` (default: the default entity)."""
        if "/" in name:
            ent, proj = self._project_path(name)
        else:
            ent, proj = validate_project(entity or self._entity, "entity"), validate_project(name)
        return Project(self, ent, proj)

    def runs(
        self,
        path: str | None = None,
        filters: Mapping[str, Any] | None = None,
        order: str = "+created_at",
        per_page: int = 50,
        include_sweeps: bool = True,
        lazy: bool = True,
    ) -> Runs:
        """The runs of project ``path`` (``project`` or ``entity/project``) that match W&B's
        ``filters`` (see ``cairn.sdk._runs_query``), in ``order`` (default oldest first)."""
        from cairn.sdk._history import loads
        from cairn.sdk._runs_query import matches, names_summary, ordered, sort_key

        entity, project = self._project_path(path)
        if filters is not None and not isinstance(filters, Mapping):
            raise ValidationError(f"filters must be a dict, got {type(filters).__name__}")
        sort_key(order)  # an unknown field is refused before anything is read
        runs = self._service.list_runs(entity, project)
        summaries = None
        if names_summary(filters, order):  # W&B's summary_metrics.<key>: one read per run
            summaries = {
                r.id: loads(self._service.run_summary(entity, project, r.id)) for r in runs
            }
        found = ordered([r for r in runs if matches(r, filters or {}, summaries)], order, summaries)
        return Runs([ApiRun(self._session, r) for r in found], entity, project)

    def registries(
        self, organization: str | None = None, filter: Mapping[str, Any] | None = None
    ) -> list[Registry]:
        """The registries (those the key may read, on a server); ``model`` and ``dataset``
        always exist. ``filter`` may match ``name`` (W&B's ``{"name": ...}``)."""
        from cairn.sdk._registry import Registry

        found = [Registry(self._session, r) for r in self._service.list_registries()]
        wanted = (filter or {}).get("name")
        if isinstance(wanted, str):
            found = [r for r in found if r.name == wanted]
        return found

    def registry(self, name: str, organization: str | None = None) -> Registry:
        """The registry ``name`` (without the ``wandb-registry-`` prefix)."""
        for reg in self.registries():
            if reg.name == name or reg.full_name == name:
                return reg
        raise ArtifactNotFoundError(
            f"registry {name!r} not found; create it with cairn.Api().create_registry({name!r})"
        )

    def create_registry(
        self,
        name: str,
        visibility: str = "organization",
        organization: str | None = None,
        description: str | None = None,
        artifact_types: Sequence[str] | None = None,
    ) -> Registry:
        """Create a registry (``visibility`` ``organization`` or ``restricted``; on a server,
        who may read or link is what keys are granted on ``registry/wandb-registry-<name>``)."""
        from cairn.sdk._registry import Registry

        if visibility not in ("organization", "restricted"):
            raise ValidationError("visibility must be 'organization' or 'restricted'")
        record = self._service.create_registry(
            validate_artifact_name(name),
            description=description,
            visibility=visibility,
            artifact_types=list(artifact_types or ()),
        )
        return Registry(self._session, record)

    def run(self, path: str) -> ApiRun:
        """The run ``[[entity/]project/]run_id``."""
        entity, project, run_id = self._names.run_path(path)
        return ApiRun(self._session, self._service.get_run(entity, project, run_id))

    def diff(self, a: Artifact | str, b: Artifact | str) -> ManifestDiff:
        """What changed from version ``a`` to version ``b``: added, removed, modified entries.

        Pages whose digests are equal are skipped unread, so the cost follows the change.
        """
        old = a if isinstance(a, Artifact) else self.artifact(a)
        new = b if isinstance(b, Artifact) else self.artifact(b)
        return diff_trees(self._session.reader, old.digest, new.digest)

    def discard_pending(self, artifact_path: str, distributed_id: str) -> None:
        """Throw away the PENDING version that ``distributed_id`` was building."""
        entity, project, coll, _ = self._split(artifact_path)
        for r in self._service.list_versions(entity, project, coll, include_pending=True):
            if r.state == "PENDING" and r.distributed_id == distributed_id:
                self._service.discard_pending(r.id)
                return
        raise ArtifactNotFoundError(
            f"no pending version of {coll} with distributed_id {distributed_id!r}"
        )

    def cleanup_pending(self, older_than_seconds: float) -> int:
        """Discard PENDING versions untouched for longer than that; return how many."""
        return self._service.cleanup_pending(older_than_seconds)

    def __iter__(self) -> Iterator[Project]:
        return iter(self.projects())
