"""A run's artifacts (W&B's members of ``Run``): log, use, upsert and finish (distributed), link,
and the model shortcuts. ``RunArtifacts`` is a base of ``Run``: it reads the session and record the
run holds."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from cairn.core import (
    REGISTRY_PREFIX,
    RunRecord,
    validate_aliases,
    validate_artifact_name,
    validate_tags,
)
from cairn.errors import ValidationError
from cairn.sdk import _publish
from cairn.sdk._artifact import Artifact
from cairn.sdk._resolver import NameResolver
from cairn.sdk._session import Session
from cairn.service import Service

if TYPE_CHECKING:
    from cairn.sdk._run import Run


class RunArtifacts:
    _session: Session
    _service: Service
    _record: RunRecord

    if TYPE_CHECKING:
        # Run's own members, which these read.
        @property
        def id(self) -> str: ...
        @property
        def entity(self) -> str: ...
        @property
        def project(self) -> str: ...
        @property
        def group(self) -> str | None: ...

        def _check_active(self, what: str) -> None: ...

    def _run(self) -> Run:
        return cast("Run", self)

    def _prepare(
        self,
        artifact_or_path: Artifact | str | os.PathLike[str],
        name: str | None,
        type: str | None,
    ) -> Artifact:
        """Turn ``log_artifact``'s first argument into an Artifact (a path becomes a new one)."""
        if isinstance(artifact_or_path, Artifact):
            return artifact_or_path
        path = os.fspath(artifact_or_path)
        if "://" in path:
            art = Artifact(name or name_from_path(self.id, path), type or "unspecified")
            art.add_reference(path)
            return art
        if not os.path.exists(path):
            raise ValidationError(f"cannot log {path!r}: no such file or directory")
        art = Artifact(name or name_from_path(self.id, path), type or "unspecified")
        if os.path.isdir(path):
            art.add_dir(path)
        else:
            art.add_file(path)
        return art

    def log_artifact(
        self,
        artifact_or_path: Artifact | str | os.PathLike[str],
        name: str | None = None,
        type: str | None = None,
        aliases: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
    ) -> Artifact:
        """Log an artifact (or a file or directory path) as a new version, the run's output.

        If the content equals an existing version of the same name, no new version is made; that
        one gets ``aliases`` and ``latest``.
        """
        self._check_active("log_artifact")
        artifact = self._prepare(artifact_or_path, name, type)
        alias_list = validate_aliases(aliases)
        tag_list = validate_tags(tags)
        return _publish.log(
            artifact,
            self._session,
            entity=self.entity,
            project=self.project,
            run_id=self.id,
            aliases=alias_list,
            tags=tag_list,
        )

    def use_artifact(
        self,
        artifact_or_name: Artifact | str,
        type: str | None = None,
        aliases: Sequence[str] | None = None,
        use_as: str | None = None,
    ) -> Artifact:
        """Fetch an artifact version (``name``, ``name:alias``, ``name:vN``, ``project/name:alias``
        or ``entity/project/name:alias``) and record this run as its user."""
        self._check_active("use_artifact")
        if isinstance(artifact_or_name, Artifact):
            artifact = artifact_or_name
            if artifact.is_draft():
                self.log_artifact(artifact, aliases=aliases)
        else:
            names = NameResolver(self._session, entity=self.entity, project=self.project)
            record = names.resolve(artifact_or_name)
            artifact = Artifact._from_record(self._session, record)
        if type is not None and type != artifact.type:
            raise ValidationError(
                f"artifact {artifact.name} has type {artifact.type!r}, not {type!r}"
            )
        assert artifact.id is not None
        self._service.use_version(artifact.id, self._record)
        return artifact

    def _distributed_id(self, distributed_id: str | None, what: str) -> str:
        dist = distributed_id or self.group
        if not dist:
            raise TypeError(
                f"{what} needs a distributed_id: pass distributed_id=... or start the run with"
                " cairn.init(group=...) (or set CAIRN_RUN_GROUP); the group is the default"
            )
        return dist

    def upsert_artifact(
        self,
        artifact_or_path: Artifact | str | os.PathLike[str],
        name: str | None = None,
        type: str | None = None,
        aliases: Sequence[str] | None = None,
        distributed_id: str | None = None,
    ) -> Artifact:
        """Add this run's files to the shared PENDING version of ``distributed_id`` (default:
        the run's group). Many runs may upsert at once; ``finish_artifact`` commits it."""
        self._check_active("upsert_artifact")
        dist = self._distributed_id(distributed_id, "upsert_artifact")
        artifact = self._prepare(artifact_or_path, name, type)
        _publish.stage_distributed(
            artifact, self._session, self._run(), dist, validate_aliases(aliases)
        )
        return artifact

    def finish_artifact(
        self,
        artifact_or_path: Artifact | str | os.PathLike[str],
        name: str | None = None,
        type: str | None = None,
        aliases: Sequence[str] | None = None,
        distributed_id: str | None = None,
    ) -> Artifact:
        """Stage this run's files (if any) and commit the distributed version: it gets its
        number and ``latest`` and never changes again."""
        self._check_active("finish_artifact")
        dist = self._distributed_id(distributed_id, "finish_artifact")
        artifact = self._prepare(artifact_or_path, name, type)
        _publish.finish_distributed(
            artifact, self._session, self._run(), dist, validate_aliases(aliases)
        )
        return artifact

    def link_artifact(
        self, artifact: Artifact, target_path: str, aliases: Sequence[str] | None = None
    ) -> Artifact:
        """Link a version into ``target_path`` (a registry's ``wandb-registry-<name>/<collection>``,
        or ``[[entity/]project/]collection``); a draft is logged first. Returns the linked
        version (W&B's ``Run.link_artifact``)."""
        self._check_active("link_artifact")
        if artifact.is_draft():
            self.log_artifact(artifact)
        return artifact.link(target_path, aliases)

    def log_model(
        self,
        path: str | os.PathLike[str],
        name: str | None = None,
        aliases: Sequence[str] | None = None,
    ) -> Artifact:
        """Log a model file or directory as an artifact of type ``model`` (W&B's
        ``Run.log_model``); ``name`` defaults to ``run-<run id>-<base name>``."""
        self._check_active("log_model")
        return self.log_artifact(path, name=name, type="model", aliases=aliases)

    def link_model(
        self,
        path: str | os.PathLike[str],
        registered_model_name: str,
        name: str | None = None,
        aliases: Sequence[str] | None = None,
    ) -> Artifact:
        """Log a model file or directory (as ``log_model``) and link it into the model
        registry's collection ``registered_model_name`` (W&B's ``Run.link_model``; cairn's
        model registry is ``wandb-registry-model``). Returns the linked version."""
        self._check_active("link_model")
        logged = self.log_model(path, name=name)
        target = f"{REGISTRY_PREFIX}model/{validate_artifact_name(registered_model_name)}"
        return self.link_artifact(logged, target, aliases)

    def use_model(self, name: str) -> str:
        """Download the model artifact ``name`` (``name:alias``, ...), record the run as its user,
        and return the local path: the file itself for a one-file model, else the directory
        (W&B's ``Run.use_model``)."""
        self._check_active("use_model")
        artifact = self.use_artifact(name)
        if "model" not in artifact.type.lower():
            raise ValidationError(
                f"use_model() is for model artifacts; {artifact.name} has type {artifact.type!r}:"
                " use use_artifact() and download() instead"
            )
        root = artifact.download()
        entries = artifact.manifest.entries
        if len(entries) == 1:
            (only,) = list(entries)
            return os.path.join(root, *only.split("/"))
        return root

    def logged_artifacts(self) -> list[Artifact]:
        records = self._service.run_versions(self.entity, self.project, self.id, "output")
        return [Artifact._from_record(self._session, r) for r in records]

    def used_artifacts(self) -> list[Artifact]:
        records = self._service.run_versions(self.entity, self.project, self.id, "input")
        return [Artifact._from_record(self._session, r) for r in records]


def name_from_path(run_id: str, path: str) -> str:
    base = os.path.basename(os.path.normpath(path.split("://", 1)[-1])) or "artifact"
    clean = re.sub(r"[^A-Za-z0-9_\-.]", "-", base)
    return f"run-{run_id}-{clean}"[:128]
