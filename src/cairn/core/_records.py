"""Plain records that cross the Service seam: projects, runs, collections, versions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PENDING = "PENDING"
COMMITTED = "COMMITTED"
DELETED = "DELETED"

RUNNING = "running"
FINISHED = "finished"
FAILED = "failed"
CRASHED = "crashed"


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: str
    entity: str
    project: str
    name: str
    group: str | None = None
    job_type: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    state: str = RUNNING
    created_at: float = 0.0
    finished_at: float | None = None

    @property
    def path(self) -> str:
        return f"{self.entity}/{self.project}/{self.id}"


@dataclass(frozen=True, slots=True)
class CollectionRecord:
    id: int
    entity: str
    project: str
    name: str
    type: str
    description: str | None
    version_count: int
    latest_index: int | None
    latest_size: int | None
    created_at: float
    updated_at: float
    tags: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()  # every alias in use in the collection


@dataclass(frozen=True, slots=True)
class VersionRecord:
    """A version of a collection, as the catalog knows it."""

    id: str
    entity: str
    project: str
    name: str  # the collection's name
    type: str
    index: int | None  # None while PENDING
    state: str
    digest: str | None  # the manifest root digest; None while PENDING
    size: int
    file_count: int
    metadata: Mapping[str, Any]
    description: str | None
    aliases: tuple[str, ...]
    tags: tuple[str, ...]
    created_at: float
    updated_at: float
    created_by: str | None  # run id
    distributed_id: str | None = None
    base_version_id: str | None = None
    collection_id: int = 0
    ttl_seconds: float | None = None  # W&B's Artifact.ttl; None: no TTL
    source_version_id: str | None = None  # a registry link: the version it links to

    @property
    def version(self) -> str | None:
        return None if self.index is None else f"v{self.index}"

    @property
    def qualified_name(self) -> str:
        label = self.version or self.id
        return f"{self.entity}/{self.project}/{self.name}:{label}"


@dataclass(frozen=True, slots=True)
class RegistryRecord:
    """A registry (W&B's): the project ``wandb-registry-<name>`` of the registry entity."""

    name: str  # without the "wandb-registry-" prefix
    entity: str
    project: str
    description: str | None
    visibility: str
    artifact_types: tuple[str, ...]
    created_at: float
