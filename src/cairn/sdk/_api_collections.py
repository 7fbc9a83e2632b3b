"""Collections and types as the query API sees them (W&B's ``ArtifactCollection``,
``ArtifactType``) and the paginated ``Artifacts`` list."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from cairn.core import (
    CollectionRecord,
    iso_time,
    validate_artifact_name,
    validate_tags,
)
from cairn.errors import ValidationError
from cairn.sdk._artifact import Artifact
from cairn.sdk._session import Session

if TYPE_CHECKING:
    from cairn.sdk._api import Api


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


def cursor_index(cursor: str) -> int:
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
