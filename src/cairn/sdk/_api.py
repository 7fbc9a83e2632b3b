"""The query API (W&B's ``wandb.Api``): find artifacts, collections, types and runs."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cairn.core import (
    CollectionRecord,
    ManifestDiff,
    RunRecord,
    diff_trees,
    iso_time,
    validate_artifact_name,
    validate_project,
    validate_tags,
)
from cairn.errors import ArtifactNotFoundError, NotFoundError, ValidationError
from cairn.sdk._artifact import Artifact
from cairn.sdk._resolver import NameResolver
from cairn.sdk._session import Session

if TYPE_CHECKING:
    from cairn.sdk._history import Summary
    from cairn.sdk._registry import Registry


_HISTORY_PAGE = 10_000  # history rows per request when a whole history is read


class ApiRun:
    """A run as the query API sees it (W&B's ``wandb.apis.public.Run``)."""

    def __init__(self, session: Session, record: RunRecord) -> None:
        self._session = session
        self._service = session.service
        self._record = record
        self._summary: Summary | None = None

    id = property(lambda self: self._record.id)
    name = property(lambda self: self._record.name)
    entity = property(lambda self: self._record.entity)
    project = property(lambda self: self._record.project)
    group = property(lambda self: self._record.group)
    job_type = property(lambda self: self._record.job_type)
    state = property(lambda self: self._record.state)
    path = property(lambda self: self._record.path.split("/"))

    @property
    def config(self) -> dict[str, Any]:
        return dict(self._record.config)

    @property
    def created_at(self) -> str | None:
        return iso_time(self._record.created_at)

    def logged_artifacts(self) -> list[Artifact]:
        r = self._record
        records = self._service.run_versions(r.entity, r.project, r.id, "output")
        return [Artifact._from_record(self._session, v) for v in records]

    def used_artifacts(self) -> list[Artifact]:
        r = self._record
        records = self._service.run_versions(r.entity, r.project, r.id, "input")
        return [Artifact._from_record(self._session, v) for v in records]

    @property
    def display_name(self) -> str:
        return str(self._record.name)

    @property
    def tags(self) -> list[str]:
        return []

    # -- history and summary (W&B's public Run.summary, history(), scan_history()) --

    @property
    def summary(self) -> Summary:
        """The run's summary (a dict-like object): each logged key's last value and what was
        set. Setting a key (``run.summary["k"] = v``, ``run.summary.update({...})``) saves it."""
        if self._summary is None:
            from cairn.sdk._history import Summary, dumps, loads

            r = self._record
            text = self._service.run_summary(r.entity, r.project, r.id)

            def save() -> None:
                assert self._summary is not None
                data = dumps(self._summary._as_dict())
                self._service.log_history(r.entity, r.project, r.id, [], data)

            self._summary = Summary(loads(text), save)
        return self._summary

    @property
    def summary_metrics(self) -> dict[str, Any]:
        """The summary as a plain dict (W&B's ``Run.summary_metrics``)."""
        return dict(self.summary)

    def update(self) -> None:
        """Save the summary (W&B's ``Run.update``; setting summary keys saves them already)."""
        if self._summary is not None:
            from cairn.sdk._history import dumps

            r = self._record
            data = dumps(self._summary._as_dict())
            self._service.log_history(r.entity, r.project, r.id, [], data)

    @property
    def lastHistoryStep(self) -> int:
        """The last logged step, or -1."""
        rows = self._rows(None, None)
        return int(rows[-1]["_step"]) if rows else -1

    def _rows(self, min_step: int | None, max_step: int | None) -> list[dict[str, Any]]:
        """Every row, read in pages (a server answers each page in one bounded response)."""
        return list(self._pages(min_step, max_step, _HISTORY_PAGE))

    def _pages(
        self, min_step: int | None, max_step: int | None, page_size: int
    ) -> Iterator[dict[str, Any]]:
        from cairn.sdk._history import loads

        r = self._record
        start = min_step
        while True:
            texts = self._service.run_history(
                r.entity, r.project, r.id, min_step=start, max_step=max_step, limit=page_size
            )
            rows = [loads(t) for t in texts]
            yield from rows
            if len(rows) < page_size:
                return
            start = int(rows[-1]["_step"]) + 1

    def history(
        self,
        samples: int = 500,
        keys: Sequence[str] | None = None,
        x_axis: str = "_step",
        pandas: bool = True,
        stream: str = "default",
    ) -> Any:
        """Logged rows, at most ``samples`` of them spread over the run (W&B's
        ``Run.history``): a pandas DataFrame, or with ``pandas=False`` a list of dicts. With
        ``keys``, only rows holding every key, with those keys and ``x_axis``. ``stream="system"``
        (system metrics) is empty: cairn records none."""
        from cairn.sdk._history import sample, select_keys

        if stream not in ("default", "system"):
            raise ValidationError(f"invalid stream {stream!r}: use 'default' or 'system'")
        if keys is not None and (isinstance(keys, str) or not isinstance(keys, Sequence)):
            raise ValueError("keys must be a list of strings")
        rows = [] if stream == "system" else self._rows(None, None)
        wanted = None if keys is None else [x_axis, *(k for k in keys if k != x_axis)]
        picked = sample(list(select_keys(rows, wanted)), samples)
        if not pandas:
            return picked
        try:
            import pandas as pd  # type: ignore[import-untyped]
        except ImportError:
            from cairn._extras import missing_extra

            raise missing_extra("Run.history() (or pandas=False)", "data", "pandas") from None
        return pd.DataFrame.from_records(picked)

    def scan_history(
        self,
        keys: Sequence[str] | None = None,
        page_size: int = 1000,
        min_step: int | None = None,
        max_step: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every logged row, in step order, read ``page_size`` rows at a time (W&B's
        ``Run.scan_history``); with ``keys``, only rows holding every key, with only those
        keys; ``min_step <= _step < max_step``."""
        from cairn.sdk._history import select_keys

        if page_size < 1:
            raise ValidationError(f"page_size must be 1 or more, not {page_size}")
        wanted = None if keys is None else list(keys)
        return select_keys(self._pages(min_step, max_step, page_size), wanted)

    def delete(self, delete_artifacts: bool = False) -> None:
        """Delete the run. Versions it logged stay (with no logging run) unless
        ``delete_artifacts=True`` deletes them too, aliases included (W&B's ``Run.delete``)."""
        r = self._record
        self._service.delete_run(r.entity, r.project, r.id, delete_artifacts=delete_artifacts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ApiRun) and other._record.path == self._record.path

    def __hash__(self) -> int:
        return hash(self._record.path)

    def __repr__(self) -> str:
        return f"<Run {self._record.path} ({self.state})>"


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


class Runs(list[ApiRun]):
    """The runs ``Api.runs`` found: a list (``len``, indexing, iteration), as W&B's ``Runs``."""

    def __init__(self, runs: list[ApiRun], entity: str, project: str) -> None:
        super().__init__(runs)
        self.entity = entity
        self.project = project

    @property
    def length(self) -> int:
        return len(self)


class Artifacts(list[Artifact]):
    """W&B's paginated ``Artifacts``: the versions a query found, as a list. ``cursor`` names the
    last one; pass it as ``start=`` to get only what comes after it (``None`` when empty)."""

    def __init__(self, artifacts: list[Artifact], per_page: int = 50) -> None:
        super().__init__(artifacts)
        self.per_page = per_page

    @property
    def cursor(self) -> str | None:
        for artifact in reversed(self):
            if not artifact.is_draft() and artifact.state != "PENDING":
                return artifact.version
        return None

    @property
    def length(self) -> int:
        return len(self)

    @property
    def more(self) -> bool:
        """Whether more pages remain to be loaded: never, every version is loaded at once."""
        return False


def _cursor_index(cursor: str) -> int:
    if not isinstance(cursor, str) or not cursor.startswith("v") or not cursor[1:].isdigit():
        raise ValidationError(f"invalid start {cursor!r}: pass the cursor of an earlier answer")
    return int(cursor[1:])


class ArtifactType:
    """An artifact type in a project, with its collections."""

    def __init__(self, api: Api, entity: str, project: str, name: str) -> None:
        self._api = api
        self.entity = entity
        self.project = project
        self.name = name

    def collections(self) -> list[ArtifactCollection]:
        return self._api.artifact_collections(f"{self.entity}/{self.project}", self.name)

    def collection(self, name: str) -> ArtifactCollection:
        return self._api.artifact_collection(self.name, f"{self.entity}/{self.project}/{name}")

    def __repr__(self) -> str:
        return f"<ArtifactType {self.name}>"


class ArtifactCollection:
    """A named sequence of versions in a project (W&B's ``ArtifactCollection``).

    ``name``, ``description`` and ``tags`` may be set, then ``save()``; ``delete()`` removes the
    collection with all its versions.
    """

    def __init__(self, session: Session, record: CollectionRecord) -> None:
        self._session = session
        self._service = session.service
        self._assign(record)

    def _assign(self, record: CollectionRecord) -> None:
        self._record = record
        self._name = record.name
        self._description = record.description
        self._tags = list(record.tags)

    type = property(lambda self: self._record.type)
    entity = property(lambda self: self._record.entity)
    project = property(lambda self: self._record.project)
    id = property(lambda self: self._record.id)

    @property
    def name(self) -> str:
        return str(self._name)

    @name.setter
    def name(self, value: str) -> None:
        self._name = validate_artifact_name(value)

    @property
    def description(self) -> str | None:
        return self._description

    @description.setter
    def description(self, value: str | None) -> None:
        if value is not None and not isinstance(value, str):
            raise ValidationError(f"description must be text, got {type(value).__name__}")
        self._description = value

    @property
    def tags(self) -> list[str]:
        return self._tags

    @tags.setter
    def tags(self, value: Sequence[str] | str) -> None:
        self._tags = validate_tags(value)

    @property
    def aliases(self) -> list[str]:
        """Every alias in use in the collection (``latest`` included)."""
        return list(self._record.aliases)

    @property
    def version_count(self) -> int:
        return self._record.version_count

    @property
    def created_at(self) -> str | None:
        return iso_time(self._record.created_at)

    @property
    def updated_at(self) -> str | None:
        return iso_time(self._record.updated_at)

    def artifacts(self, per_page: int = 50) -> Artifacts:
        """The collection's versions, newest first."""
        r = self._record
        records = self._service.list_versions(r.entity, r.project, r.name)
        records.sort(key=lambda v: v.index or 0, reverse=True)
        return Artifacts([Artifact._from_record(self._session, v) for v in records], per_page)

    versions = artifacts

    def is_sequence(self) -> bool:
        return True

    def save(self) -> None:
        """Save a new ``name`` (rename), ``description`` or ``tags``; all or nothing."""
        r = self._record
        tags = validate_tags(self._tags)
        record = self._service.update_collection(
            r.entity,
            r.project,
            r.name,
            new_name=self._name if self._name != r.name else None,
            description=self._description if self._description != r.description else None,
            tags=tags if tags != list(r.tags) else None,
        )
        self._assign(record)

    def delete(self) -> None:
        """Delete the collection and every version of it (the blobs go with the next gc)."""
        r = self._record
        self._service.delete_collection(r.entity, r.project, r.name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ArtifactCollection) and other._record.id == self._record.id

    def __hash__(self) -> int:
        return hash(self._record.id)

    def __repr__(self) -> str:
        return f"<ArtifactCollection {self.name} ({self.type})>"


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
        entity, project, coll, label = self._split(name)
        record = self._service.resolve(entity, project, coll, label)
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
            after = _cursor_index(start)
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
