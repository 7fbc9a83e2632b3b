"""Names and paths: what is allowed, and how artifact paths are parsed.

The rules follow W&B's so that code moving between the two behaves the same:

* artifact (collection) names: letters, digits, ``-``, ``_`` and ``.``, at most 128 characters;
* types: at most 128 characters, no ``/`` or ``:``; ``job`` and ``wandb-*`` are reserved; so
  are, in ``Artifact(name, type)``, the names W&B reserves for the artifacts it makes itself
  (``run_table`` named ``run-*``, ``code`` named ``source-*``);
* aliases: at most 128 characters, no ``/`` or ``:``; ``vN`` is reserved for version numbers;
* tags: words of letters, digits, ``-`` and ``_`` separated by single spaces;
* project and entity names: at most 128 characters, none of ``/ \\ # ? % : *`` or line breaks
  (``*`` is the grant pattern of API keys, so no name may be one);
* no entity, project, artifact or alias name consists of dots only (``.``, ``..``): in a URL or
  a path they would mean the current or parent directory.

Entry paths (the names of files inside an artifact) are relative, ``/``-separated and normalised;
anything that could escape a download directory is refused here, once, for every caller.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cairn.errors import ValidationError

MAX_NAME_LEN = 128
MAX_PATH_LEN = 4096
MAX_PART_BYTES = 255

_NAME_RE = re.compile(r"^[A-Za-z0-9_\-.]+$")
_TAG_RE = re.compile(r"^[-\w]+( +[-\w]+)*$")
_VERSION_RE = re.compile(r"^v(0|[1-9][0-9]*)$")
_VERSION_LIKE_RE = re.compile(r"^v[0-9]+$")  # v01 too: refused as an alias, as W&B refuses it
_PROJECT_FORBIDDEN = frozenset("/\\#?%:*\r\n")
_ALIAS_FORBIDDEN = frozenset("/:")
RESERVED_TYPES = frozenset({"job"})
RESERVED_TYPE_PREFIX = "wandb-"
# W&B's artifacts it makes itself: names of these types starting so are reserved in
# ``Artifact(name, type)`` (run.log's tables are ``run-<run id>-<key>`` of type run_table).
RESERVED_NAME_PREFIXES = {"run_table": "run-", "code": "source-"}
LATEST = "latest"
# W&B's registries: the project "wandb-registry-<name>"; in cairn they all belong to one entity.
REGISTRY_PREFIX = "wandb-registry-"
REGISTRY_ENTITY = "registry"


def _dots_only(name: str, what: str) -> None:
    if not name.strip("."):
        raise ValidationError(
            f"invalid {what} {name!r}: a name of dots only would mean a directory in paths and URLs"
        )


def _short(value: str, limit: int = 60) -> str:
    return value if len(value) <= limit else value[: limit - 3] + "..."


def validate_artifact_name(name: object) -> str:
    """Return ``name`` if it is a valid artifact name, else raise ``ValidationError``."""
    if not isinstance(name, str) or not name:
        raise ValidationError(f"artifact name must be a non-empty string, got {name!r}")
    if len(name) > MAX_NAME_LEN:
        raise ValidationError(
            f"artifact name {_short(name)!r} is longer than {MAX_NAME_LEN} characters"
        )
    if not _NAME_RE.match(name):
        raise ValidationError(
            f"invalid artifact name {name!r}: use only letters, digits, '-', '_' and '.'"
            " (a version or alias goes after ':' when you look an artifact up, not in its name)"
        )
    _dots_only(name, "artifact name")
    return name


def _label(value: object, what: str) -> str:
    """``value`` if it is a label (an alias, a type): a non-empty string of at most 128
    characters without '/', ':' or control characters."""
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{what} must be a non-empty string, got {value!r}")
    if len(value) > MAX_NAME_LEN:
        raise ValidationError(f"{what} {_short(value)!r} is longer than 128 characters")
    if _ALIAS_FORBIDDEN.intersection(value) or any(ord(c) < 32 for c in value):
        raise ValidationError(
            f"invalid {what} {value!r}: it may not contain '/', ':' or control characters"
        )
    return value


def validate_type(type_name: object) -> str:
    """Return ``type_name`` if it is a valid artifact type."""
    type_name = _label(type_name, "artifact type")
    if type_name in RESERVED_TYPES or type_name.startswith(RESERVED_TYPE_PREFIX):
        raise ValidationError(
            f"artifact type {type_name!r} is reserved for internal use; choose another type"
        )
    return type_name


def check_user_artifact(name: str, type_name: str) -> None:
    """Refuse what W&B reserves for the artifacts it makes itself, as W&B does in
    ``Artifact(name, type)`` (``ValueError``): ``run_table`` artifacts named ``run-...``,
    ``code`` artifacts named ``source-...`` (besides the types ``validate_type`` refuses)."""
    prefix = RESERVED_NAME_PREFIXES.get(type_name)
    if prefix is not None and name.startswith(prefix):
        raise ValidationError(
            f"artifact type {type_name!r} is reserved for internal use for names starting with"
            f" {prefix!r} (cairn makes them, as W&B does); choose another name or type"
        )


# W&B's artifacts it makes itself, which take no TTL (its TTL guide's "auto-generated" types).
AUTO_GENERATED_TYPES = frozenset({"run_table", "code", "job"})


def check_ttl_allowed(type_name: str, is_link: bool) -> None:
    """Refuse a TTL where W&B refuses one (``ValueError``): on a registry link (set it on the
    source version) and on the types of artifacts W&B makes itself."""
    if is_link:
        raise ValidationError(
            "cannot set the TTL of a link: unlink it, or set the TTL of the source version"
        )
    if type_name in AUTO_GENERATED_TYPES or type_name.startswith(RESERVED_TYPE_PREFIX):
        raise ValidationError(
            f"cannot set a TTL on an artifact of type {type_name!r}: W&B makes those itself and"
            " they take no TTL"
        )


def validate_alias(alias: object) -> str:
    """Return ``alias`` if it may be given to a version by a user."""
    alias = _label(alias, "alias")
    if _VERSION_LIKE_RE.match(alias):
        raise ValidationError(
            f"invalid alias {alias!r}: names of the form v<digits> are version numbers, set by"
            " cairn; choose another alias"
        )
    _dots_only(alias, "alias")
    return alias


def validate_aliases(aliases: object) -> list[str]:
    """Validate a list of aliases (a single string counts as one); duplicates are dropped."""
    if aliases is None:
        return []
    if isinstance(aliases, str):
        aliases = [aliases]
    if not isinstance(aliases, (list, tuple, set, frozenset)):
        raise ValidationError(f"aliases must be a list of strings, got {aliases!r}")
    return list(dict.fromkeys(validate_alias(a) for a in aliases))


def validate_tags(tags: object) -> list[str]:
    """Validate a list of tags (a single string counts as one); duplicates are dropped."""
    if tags is None:
        return []
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, (list, tuple, set, frozenset)):
        raise ValidationError(f"tags must be a list of strings, got {tags!r}")
    out: list[str] = []
    for tag in tags:
        if not isinstance(tag, str) or not _TAG_RE.match(tag) or len(tag) > MAX_NAME_LEN:
            raise ValidationError(
                f"invalid tag {tag!r}: use letters, digits, '-' and '_', words separated by spaces"
            )
        out.append(tag)
    return list(dict.fromkeys(out))


def validate_project(project: object, what: str = "project") -> str:
    """Return ``project`` (or an entity name, with ``what="entity"``) if it is valid."""
    if not isinstance(project, str) or not project:
        raise ValidationError(f"{what} name must be a non-empty string, got {project!r}")
    if len(project) > MAX_NAME_LEN:
        raise ValidationError(f"{what} name {_short(project)!r} is longer than 128 characters")
    bad = _PROJECT_FORBIDDEN.intersection(project)
    if bad or any(ord(c) < 32 for c in project):
        shown = ", ".join(repr(c) for c in sorted(bad)) or "control characters"
        raise ValidationError(f"invalid {what} name {project!r}: it may not contain {shown}")
    _dots_only(project, f"{what} name")
    return project


def is_version_label(label: str) -> bool:
    """Whether ``label`` names a version number (``v0``, ``v12``) rather than an alias."""
    return _VERSION_RE.match(label) is not None


def version_index(label: str) -> int:
    """The number in a version label: ``version_index("v3") == 3``."""
    if not is_version_label(label):
        raise ValidationError(f"{label!r} is not a version label like 'v0'")
    return int(label[1:])


def version_label(index: int) -> str:
    return f"v{index}"


def normalize_entry_path(path: object) -> str:
    """Return the normal form of an entry path, or raise ``ValidationError``.

    Entry paths are relative and ``/``-separated. A leading ``./`` and repeated ``/`` are
    normalised away only where that is unambiguous; ``..``, absolute paths, NUL, backslashes and
    empty names are refused, because they could write outside a download directory (or mean
    something else on another operating system).
    """
    if not isinstance(path, str):
        raise ValidationError(f"entry path must be a string, got {path!r}")
    original = path
    while path.startswith("./"):
        path = path[2:]
    problem = entry_path_problem(path)
    if problem is not None:
        raise ValidationError(f"invalid entry path {_short(original, 200)!r}: {problem}")
    return path


def entry_names_ok(prefix: str, names: list[str]) -> bool:
    """Whether every ``prefix + name`` is a valid entry path, by a test per directory instead of
    per file: sufficient, not necessary (False: check each with ``entry_path_problem``).

    ``names`` are file names as the OS lists them (not empty, no "/" or NUL); ``prefix`` is ""
    or ends with "/". True only when each path would pass ``entry_path_problem``'s fast path:
    joined by "/", the names hold no problem that path could (a name starting with "." shows as
    "/."; a drive-like "c:" counts at the root only, so any ":" there goes the slow way)."""
    if not names:
        return True
    joined = prefix + "/".join(names)
    return (
        len(prefix) + max(map(len, names)) <= MAX_PART_BYTES
        and joined.isascii()
        and joined.isprintable()
        and "\\" not in joined
        and "//" not in joined
        and "/." not in "/" + joined
        and (prefix[1:2] != ":" if prefix else ":" not in joined)
        and not prefix.startswith("/")
    )


def entry_path_problem(path: str) -> str | None:
    """What is wrong with ``path`` as a stored entry path, or None if nothing is.

    This is the check readers apply to manifests from any source before writing files.
    """
    # Fast path for the common case (it runs once per file of every artifact): short printable
    # ASCII with no name starting with "." cannot hold any of the problems checked below.
    if (
        0 < len(path) <= MAX_PART_BYTES
        and path.isascii()
        and path.isprintable()
        and path[0] not in "/."
        and path[-1] != "/"
        and "\\" not in path
        and "//" not in path
        and "/." not in path
        and path[1:2] != ":"
    ):
        return None
    if not path:
        return "it is empty"
    if "\x00" in path:
        return "it contains a NUL character"
    if "\\" in path:
        return "it contains a backslash; use '/' to separate directories"
    if path.startswith("/") or (len(path) > 1 and path[1] == ":" and path[0].isalpha()):
        return "it is absolute; entry paths are relative to the artifact root"
    if len(path) > MAX_PATH_LEN:
        return f"it is longer than {MAX_PATH_LEN} characters"
    for part in path.split("/"):
        if part == "":
            return "it has an empty directory name ('//' or a trailing '/')"
        if part in (".", ".."):
            return f"it contains {part!r}, which could point outside the artifact"
        if len(part.encode("utf-8", "surrogatepass")) > MAX_PART_BYTES:
            return f"a name in it is longer than {MAX_PART_BYTES} bytes"
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "it is not valid Unicode text"
    if any(ord(c) < 32 for c in path):
        return "it contains a control character"
    return None


@dataclass(frozen=True, slots=True)
class ArtifactPath:
    """A parsed reference to an artifact: ``[[entity/]project/]name[:alias_or_version]``."""

    name: str
    project: str | None = None
    entity: str | None = None
    label: str | None = None  # alias or version ("latest", "v3", "best"); None means latest

    @property
    def version_index(self) -> int | None:
        """The version number asked for, when the label is ``vN``."""
        if self.label is not None and is_version_label(self.label):
            return int(self.label[1:])
        return None

    def __str__(self) -> str:
        parts = [p for p in (self.entity, self.project, self.name) if p]
        text = "/".join(parts)
        return f"{text}:{self.label}" if self.label else text


def parse_artifact_path(path: object) -> ArtifactPath:
    """Parse ``name``, ``name:alias``, ``project/name:v3`` or ``entity/project/name:alias``."""
    if not isinstance(path, str) or not path:
        raise ValidationError(f"artifact path must be a non-empty string, got {path!r}")
    base, sep, label = path.partition(":")
    if sep and not label:
        raise ValidationError(f"artifact path {path!r} has ':' but no alias or version after it")
    parts = base.split("/")
    if len(parts) > 3:
        raise ValidationError(
            f"invalid artifact path {path!r}: expected name, project/name or"
            " entity/project/name, optionally followed by ':alias' or ':vN'"
        )
    name = validate_artifact_name(parts[-1])
    project = validate_project(parts[-2]) if len(parts) >= 2 else None
    entity = validate_project(parts[-3], "entity") if len(parts) == 3 else None
    if project is not None and project.startswith(REGISTRY_PREFIX):
        entity = REGISTRY_ENTITY  # W&B's <org>/wandb-registry-<name>/...: one registry entity
    if label and not is_version_label(label) and _ALIAS_FORBIDDEN.intersection(label):
        raise ValidationError(f"invalid alias {label!r} in artifact path {path!r}")
    return ArtifactPath(name=name, project=project, entity=entity, label=label or None)
