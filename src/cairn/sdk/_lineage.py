"""Where a logged version comes from and where it went (W&B's members of ``Artifact``): its
collection, registry links and their source, the version a draft was made from, and the runs that
logged, wrote and used it. ``ArtifactLineage`` is a base of ``Artifact``: it reads the version
record and the session the artifact holds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from cairn.core import VersionRecord, validate_aliases
from cairn.sdk._session import Session
from cairn.sdk._values import link_target
from cairn.service import Service

if TYPE_CHECKING:
    from cairn.sdk._api_collections import ArtifactCollection
    from cairn.sdk._api_runs import ApiRun
    from cairn.sdk._artifact import Artifact


def _artifact_of(session: Session, record: VersionRecord) -> Artifact:
    from cairn.sdk._artifact import Artifact

    return Artifact._from_record(session, record)


class ArtifactLineage:
    _record: VersionRecord | None
    _base: VersionRecord | None
    _aliases: list[str]
    _source_cache: VersionRecord

    if TYPE_CHECKING:
        # Artifact's own members, which these read.
        @property
        def name(self) -> str: ...
        @property
        def entity(self) -> str: ...
        @property
        def project(self) -> str: ...
        @property
        def version(self) -> str: ...
        @property
        def qualified_name(self) -> str: ...

        def _ensure_logged(self, what: str) -> VersionRecord: ...
        def _sess(self) -> Session: ...
        def _svc(self) -> Service: ...

    @property
    def source_name(self) -> str:
        """``name:vN`` of the version as logged (for a registry link: of its source)."""
        src = self._source_record()
        if src is None:
            return self.name
        return f"{src.name}:{src.version}"

    def _source_record(self) -> VersionRecord | None:
        """The version a link points to (None for a version that is not a link)."""
        rec = self._record
        if rec is None or rec.source_version_id is None:
            return None
        cached = getattr(self, "_source_cache", None)
        if cached is None or cached.id != rec.source_version_id:
            cached = self._svc().get_version(rec.source_version_id)
            self._source_cache = cached
        return cached

    @property
    def is_link(self) -> bool:
        """Whether this version is a link into another collection (a registry)."""
        return self._record is not None and self._record.source_version_id is not None

    @property
    def source_entity(self) -> str:
        src = self._source_record()
        return src.entity if src is not None else self.entity

    @property
    def source_project(self) -> str:
        src = self._source_record()
        return src.project if src is not None else self.project

    @property
    def source_qualified_name(self) -> str:
        src = self._source_record()
        return (
            f"{src.entity}/{src.project}/{src.name}:{src.version}" if src else self.qualified_name
        )

    @property
    def source_version(self) -> str:
        src = self._source_record()
        return str(src.version) if src is not None else self.version

    @property
    def collection(self) -> ArtifactCollection:
        """The collection (W&B's ``ArtifactCollection``) this version belongs to."""
        from cairn.sdk._api_collections import ArtifactCollection

        rec = self._ensure_logged("collection")
        svc = self._svc()
        return ArtifactCollection(
            self._sess(), svc.get_collection(rec.entity, rec.project, rec.name)
        )

    @property
    def source_collection(self) -> ArtifactCollection:
        """The collection the version was logged to (for a registry link: its source's)."""
        from cairn.sdk._api_collections import ArtifactCollection

        self._ensure_logged("source_collection")
        src = self._source_record()
        if src is None:
            return self.collection
        svc = self._svc()
        return ArtifactCollection(
            self._sess(), svc.get_collection(src.entity, src.project, src.name)
        )

    def link(self, target_path: str, aliases: Sequence[str] | None = None) -> Artifact:
        """Link this version into ``target_path`` (``collection``, ``project/collection``,
        ``entity/project/collection`` or a registry's ``wandb-registry-<registry>/<collection>``):
        a version there with its own number and aliases, the same content (no copy). Returns
        the linked version (W&B's ``Artifact.link``)."""
        rec = self._ensure_logged("link")
        entity, project, name = link_target(target_path, rec.entity, rec.project)
        linked = self._svc().link_version(rec.id, entity, project, name, validate_aliases(aliases))
        return _artifact_of(self._sess(), linked)

    def unlink(self) -> None:
        """Remove this link from the collection it was linked to (the source version stays).
        Raises ``UsageError`` for a version that is not a link."""
        rec = self._ensure_logged("unlink")
        self._svc().unlink_version(rec.id)
        self._record = self._svc().get_version(rec.id)
        self._aliases = []

    @property
    def linked_artifacts(self) -> list[Artifact]:
        """The links of this version (where it was linked to)."""
        rec = self._ensure_logged("linked_artifacts")
        return [_artifact_of(self._sess(), r) for r in self._svc().version_links(rec.id)]

    @property
    def base_version(self) -> Artifact | None:
        """The version a draft was made from (None for versions built from scratch)."""
        base_id = self._record.base_version_id if self._record is not None else None
        if base_id is None and self._base is not None:
            base_id = self._base.id
        if base_id is None:
            return None
        return _artifact_of(self._sess(), self._svc().get_version(base_id))

    def used_by(self) -> list[ApiRun]:
        """The runs that used this version (``run.use_artifact``)."""
        from cairn.sdk._api_runs import ApiRun

        rec = self._ensure_logged("used_by")
        return [ApiRun(self._sess(), r) for r in self._svc().version_runs(rec.id, "input")]

    def logged_by(self) -> ApiRun | None:
        """The run that logged (committed) this version, if any."""
        from cairn.sdk._api_runs import ApiRun

        rec = self._ensure_logged("logged_by")
        if rec.created_by is None:
            return None
        return ApiRun(self._sess(), self._svc().get_run(rec.entity, rec.project, rec.created_by))

    def written_by(self) -> list[ApiRun]:
        """Every run that upserted files into this (distributed) version."""
        from cairn.sdk._api_runs import ApiRun

        rec = self._ensure_logged("written_by")
        return [ApiRun(self._sess(), r) for r in self._svc().version_runs(rec.id, "writer")]
