"""The SDK: Run, Artifact, entries and the query Api, over the Service protocol."""

from cairn.sdk._api import Api, ApiRun, ArtifactCollection, ArtifactType
from cairn.sdk._artifact import Artifact, ArtifactFiles
from cairn.sdk._entry import ArtifactManifest, ArtifactManifestEntry
from cairn.sdk._objects import Table
from cairn.sdk._run import Config, Run, current_run, finish, init, log_artifact, use_artifact
from cairn.sdk._settings import Settings, current_service, reset_services

__all__ = [
    "Api",
    "ApiRun",
    "Artifact",
    "ArtifactCollection",
    "ArtifactFiles",
    "ArtifactManifest",
    "ArtifactManifestEntry",
    "ArtifactType",
    "Config",
    "Run",
    "Settings",
    "Table",
    "current_run",
    "current_service",
    "finish",
    "init",
    "log_artifact",
    "reset_services",
    "use_artifact",
]
