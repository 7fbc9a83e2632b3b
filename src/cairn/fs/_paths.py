"""The ``cairn://`` path grammar: ``cairn://[entity/]project/name:alias_or_vN/path/in/artifact``.

The artifact segment always carries its ``:version`` or ``:alias`` (``:latest`` for the newest),
so every path parses one way: the segments before the first one holding ``:`` are the project (and
entity), that segment is the artifact, and the rest is a path inside the artifact (empty for its
root).
"""

from __future__ import annotations

from dataclasses import dataclass

from cairn.core import is_version_label, parse_artifact_path
from cairn.errors import ValidationError

PROTOCOL = "cairn"


@dataclass(frozen=True, slots=True)
class CairnPath:
    """A parsed ``cairn://`` path. ``entity`` is None when the path leaves it out (the store's
    default entity is meant); ``path`` is ``""`` for the artifact's root."""

    entity: str | None
    project: str
    name: str
    label: str
    path: str

    @property
    def artifact(self) -> str:
        """``[entity/]project/name:label``, as written."""
        head = f"{self.entity}/" if self.entity else ""
        return f"{head}{self.project}/{self.name}:{self.label}"

    @property
    def pinned(self) -> bool:
        """Whether the label is a version number (``vN``): it names one version for good."""
        return is_version_label(self.label)

    def child(self, path: str) -> str:
        """The stripped ``cairn`` path of ``path`` inside the same artifact version."""
        return f"{self.artifact}/{path}" if path else self.artifact


def strip_protocol(path: str) -> str:
    """``cairn://a/b:v1/c/`` -> ``a/b:v1/c``."""
    for prefix in (f"{PROTOCOL}://", f"{PROTOCOL}::"):
        if path.startswith(prefix):
            path = path[len(prefix) :]
    return path.strip("/")


def parse_cairn_path(path: str) -> CairnPath:
    """Parse a ``cairn://`` path (with or without the protocol); raise ``ValidationError`` with
    the grammar when it is not one."""
    stripped = strip_protocol(path)
    parts = stripped.split("/")
    at = next((i for i, part in enumerate(parts) if ":" in part), None)
    if at is None or at not in (1, 2):
        raise ValidationError(
            f"{path!r} is not a cairn path: use cairn://[entity/]project/name:alias/path (the"
            " artifact always carries its version or alias, e.g. name:latest or name:v3)"
        )
    ref = parse_artifact_path("/".join(parts[: at + 1]))
    assert ref.project is not None and ref.label is not None
    inner = "/".join(p for p in parts[at + 1 :] if p)
    return CairnPath(ref.entity, ref.project, ref.name, ref.label, inner)
