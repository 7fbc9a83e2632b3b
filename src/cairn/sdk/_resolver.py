"""Names as people write them -> full names: one set of rules for ``Api`` and the CLI.

``[[entity/]project/]name[:alias|:vN]`` for a version, ``[entity/]project`` for a project,
``[[entity/]project/]run_id`` for a run; what a path leaves out comes from the defaults: the
``entity``/``project`` given, else the settings (``CAIRN_ENTITY``, ``CAIRN_PROJECT``), else the
store's default entity.
"""

from __future__ import annotations

from cairn.core import VersionRecord, parse_artifact_path, validate_project
from cairn.errors import ValidationError
from cairn.sdk._session import Session, current_session
from cairn.sdk._settings import Settings
from cairn.service import Service


def split_project(path: str | None, entity: str, project: str) -> tuple[str, str]:
    """``(entity, project)`` of ``[entity/]project``; ``entity``/``project`` fill what it leaves
    out (both when there is no path)."""
    if not path:
        return entity, project
    parts = path.split("/")
    if len(parts) == 1:
        return entity, validate_project(parts[0])
    if len(parts) == 2:
        return validate_project(parts[0], "entity"), validate_project(parts[1])
    raise ValidationError(f"invalid project path {path!r}: expected project or entity/project")


class NameResolver:
    """The session and the default entity and project that paths resolve against."""

    def __init__(
        self,
        session: Session | None = None,
        *,
        entity: str | None = None,
        project: str | None = None,
    ) -> None:
        if session is None:
            # An entry point (Api, a CLI operation): the environment is read here, once.
            settings = Settings.from_env()
            session = current_session(settings)
        else:
            settings = session.settings
        self.session: Session = session
        self.service: Service = session.service
        self.entity: str = entity or settings.entity or self.service.default_entity
        self.project: str = project or settings.project

    def split(self, path: str) -> tuple[str, str, str, str | None]:
        """``(entity, project, name, label)`` of a version path (label None: latest)."""
        ref = parse_artifact_path(path)
        return ref.entity or self.entity, ref.project or self.project, ref.name, ref.label

    def resolve(self, path: str) -> VersionRecord:
        """The version a path names."""
        return self.service.resolve(*self.split(path))

    def resolve_beside(self, path: str, other: VersionRecord) -> VersionRecord:
        """The version a path names, its entity and project defaulting to ``other``'s."""
        ref = parse_artifact_path(path)
        entity, project = ref.entity or other.entity, ref.project or other.project
        return self.service.resolve(entity, project, ref.name, ref.label)

    def project_path(self, path: str | None) -> tuple[str, str]:
        """``(entity, project)`` of ``[entity/]project`` (the defaults when there is none)."""
        return split_project(path, self.entity, self.project)

    def run_path(self, path: str) -> tuple[str, str, str]:
        """``(entity, project, run_id)`` of ``[[entity/]project/]run_id``."""
        parts = path.split("/")
        if len(parts) == 1:
            return self.entity, self.project, parts[0]
        if len(parts) == 2:
            return self.entity, parts[0], parts[1]
        if len(parts) == 3:
            return parts[0], parts[1], parts[2]
        raise ValidationError(f"invalid run path {path!r}: expected [[entity/]project/]run_id")
