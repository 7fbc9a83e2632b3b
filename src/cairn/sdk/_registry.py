"""W&B's registries: ``Api.registries()``, ``Api.registry(name)``, ``Api.create_registry(...)``.

A registry is the project ``wandb-registry-<name>`` of the registry entity (``registry``);
versions get there by ``link_artifact`` / ``Artifact.link``. The registries ``model`` and
``dataset`` exist from their first use, as in W&B. On a server, keys are granted per registry as
per project: ``registry/wandb-registry-<name>``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cairn.core import RegistryRecord, iso_time

if TYPE_CHECKING:
    from cairn.sdk._api_collections import ArtifactCollection
    from cairn.sdk._artifact import Artifact
    from cairn.sdk._session import Session


class Registry:
    """A registry: ``name``, ``full_name`` (its project), ``description``, ``visibility``,
    ``artifact_types``, and its ``collections()`` and ``versions()``."""

    def __init__(self, session: Session, record: RegistryRecord) -> None:
        self._session = session
        self._service = session.service
        self._record = record

    name = property(lambda self: self._record.name)
    full_name = property(lambda self: self._record.project)
    entity = property(lambda self: self._record.entity)
    organization = property(lambda self: self._record.entity)
    description = property(lambda self: self._record.description)
    visibility = property(lambda self: self._record.visibility)

    @property
    def artifact_types(self) -> list[str]:
        return list(self._record.artifact_types)

    @property
    def created_at(self) -> str:
        return iso_time(self._record.created_at) or ""

    def collections(self) -> list[ArtifactCollection]:
        from cairn.sdk._api_collections import ArtifactCollection

        r = self._record
        return [
            ArtifactCollection(self._session, c)
            for c in self._service.list_collections(r.entity, r.project)
        ]

    def versions(self) -> list[Artifact]:
        """Every version linked into the registry, collection by collection, newest first."""
        out: list[Artifact] = []
        for coll in self.collections():
            out.extend(coll.versions())
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Registry) and other._record.project == self._record.project

    def __hash__(self) -> int:
        return hash(self._record.project)

    def __repr__(self) -> str:
        return f"<Registry {self.name}>"
