"""Artifact: a named, typed, versioned set of files (W&B's ``wandb.Artifact``)."""

from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import os
from collections.abc import Iterator, Sequence
from typing import IO, Any

from cairn.core import (
    COMMITTED,
    PENDING,
    ManifestDiff,
    ManifestEntry,
    VersionRecord,
    check_ttl_allowed,
    check_user_artifact,
    iso_time_micro,
    validate_aliases,
    validate_artifact_name,
    validate_tags,
    validate_type,
)
from cairn.core import build_tree as _build_tree
from cairn.errors import (
    ArtifactFinalizedError,
    ArtifactNotLoggedError,
    UsageError,
)
from cairn.sdk import _adding
from cairn.sdk._artifact_reading import ArtifactReading
from cairn.sdk._contents import Contents
from cairn.sdk._entry import ArtifactManifest, ArtifactManifestEntry
from cairn.sdk._lineage import ArtifactLineage
from cairn.sdk._publish import save_changes, save_draft
from cairn.sdk._scan import LocalPaths
from cairn.sdk._session import Session, current_session
from cairn.sdk._staging import Stager
from cairn.sdk._trees import TreeAdd
from cairn.sdk._ttl import ArtifactTTL, TtlValue, check_ttl
from cairn.sdk._values import (
    Policy,
    normalize_metadata,
)
from cairn.service import Service


class Artifact(ArtifactLineage, ArtifactReading):
    """A named, typed set of files that is logged as versions ``v0, v1, ...``.

    Build one with ``add_file``/``add_dir``/``new_file``/``add_reference``, then log it with
    ``run.log_artifact(artifact)`` or ``artifact.save()``. A logged artifact is immutable; use
    ``new_draft()`` to make the next version from it.
    """

    def __init__(
        self,
        name: str,
        type: str,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        incremental: bool = False,
        use_as: str | None = None,
    ) -> None:
        self._name = validate_artifact_name(name)
        self._type = validate_type(type)
        check_user_artifact(self._name, self._type)
        self._description = description
        self._metadata = normalize_metadata(metadata)
        self._incremental = incremental
        self._use_as = use_as
        self._aliases: list[str] = []
        self._saved_aliases: list[str] = []
        self._tags: list[str] = []
        self._record: VersionRecord | None = None
        self._session: Session | None = None
        self._stager: Stager | None = None
        self._tree: TreeAdd | None = None  # recorded when logged (add_dir again: _trees.py)
        self._contents = Contents()
        self._final = False
        self._base: VersionRecord | None = None
        self._local_paths = LocalPaths()
        self._tmp_dir: str | None = None  # new_file()'s files; removed with the artifact
        self._distributed_id: str | None = None
        # (alias, version id or None) the commit requires, checked by the store (cairn.fs)
        self._expect_alias: tuple[str, str | None] | None = None
        self._ttl: TtlValue = ArtifactTTL.INHERIT
        self._ttl_changed = False
        self._manifest = ArtifactManifest(self, self._contents)
        self._added_objects: dict[int, tuple[Any, ArtifactManifestEntry]] = {}

    # -- construction from the store -------------------------------------------------------------

    @classmethod
    def _from_record(cls, session: Session, record: VersionRecord) -> Artifact:
        art = cls.__new__(cls)
        art._name = record.name
        art._type = record.type
        art._description = record.description
        art._metadata = dict(record.metadata)
        art._incremental = False
        art._use_as = None
        art._session = session
        art._stager = None
        art._tree = None
        art._local_paths = LocalPaths()
        art._tmp_dir = None
        art._distributed_id = record.distributed_id
        art._ttl_changed = False
        art._added_objects = {}
        art._base = None
        art._assign(record)
        return art

    def _assign(self, record: VersionRecord) -> None:
        """Become a view of the committed (or deleted) version ``record``."""
        self._record = record
        self._name = record.name
        self._type = record.type
        self._description = record.description
        self._metadata = dict(record.metadata)
        self._aliases = list(record.aliases)
        self._saved_aliases = list(self._aliases)
        self._tags = list(record.tags)
        self._ttl = (
            None if record.ttl_seconds is None else _dt.timedelta(seconds=record.ttl_seconds)
        )
        self._ttl_changed = False
        self._contents = Contents(
            self._sess().reader, record.digest, record.file_count, record.size
        )
        self._manifest = ArtifactManifest(self, self._contents)
        self._final = True

    def _sess(self) -> Session:
        """The session this artifact reads and logs through (the current one, once asked)."""
        if self._session is None:
            self._session = current_session()
        return self._session

    def _svc(self) -> Service:
        return self._sess().service

    def _stage(self) -> Stager:
        if self._stager is None:
            self._stager = self._sess().stager()
        return self._stager

    # -- state checks ------------------------------------------------------------------------------

    def _ensure_logged(self, what: str) -> VersionRecord:
        if self._record is None:
            raise ArtifactNotLoggedError(
                f"'Artifact.{what}' needs a logged artifact; log it first with"
                " run.log_artifact(artifact) or artifact.save(), then read it",
                name=what,
                obj=self,
            )
        return self._record

    def _ensure_not_final(self, what: str) -> None:
        if self._final:
            raise ArtifactFinalizedError(
                f"'Artifact.{what}' cannot change {self.name}: a logged artifact is immutable;"
                " call new_draft() to make a new version from it",
                name=what,
                obj=self,
            )

    def is_draft(self) -> bool:
        """Whether the artifact is not (yet) a logged version."""
        return self._record is None

    def finalize(self) -> None:
        """Lock the artifact: no more files may be added (logging does this)."""
        self._final = True

    # -- properties --------------------------------------------------------------------------------

    @property
    def id(self) -> str | None:
        return None if self._record is None else self._record.id

    @property
    def entity(self) -> str:
        return self._ensure_logged("entity").entity

    @property
    def project(self) -> str:
        return self._ensure_logged("project").project

    @property
    def name(self) -> str:
        """``name:vN`` once logged; the bare name before."""
        rec = self._record
        if rec is not None and rec.version is not None:
            return f"{rec.name}:{rec.version}"
        return self._name

    @property
    def qualified_name(self) -> str:
        rec = self._ensure_logged("qualified_name")
        return f"{rec.entity}/{rec.project}/{self.name}"

    @property
    def version(self) -> str:
        rec = self._ensure_logged("version")
        if rec.version is None:
            raise ArtifactNotLoggedError(
                "'Artifact.version' is not assigned until the version is committed", name="version"
            )
        return rec.version

    @property
    def type(self) -> str:
        return self._type

    @property
    def description(self) -> str | None:
        return self._description

    @description.setter
    def description(self, value: str | None) -> None:
        self._description = value

    @property
    def metadata(self) -> dict[str, Any]:
        return self._metadata

    @metadata.setter
    def metadata(self, value: dict[str, Any]) -> None:
        self._metadata = normalize_metadata(value)

    @property
    def aliases(self) -> list[str]:
        """The aliases of the logged version, ``latest`` included while it points here (version
        labels ``vN`` are never aliases). Change the list, then ``save()``."""
        self._ensure_logged("aliases")
        return self._aliases

    @aliases.setter
    def aliases(self, aliases: list[str]) -> None:
        self._ensure_logged("aliases")
        self._aliases = validate_aliases(aliases)

    @property
    def tags(self) -> list[str]:
        self._ensure_logged("tags")
        return self._tags

    @tags.setter
    def tags(self, tags: list[str]) -> None:
        self._ensure_logged("tags")
        self._tags = validate_tags(tags)

    @property
    def ttl(self) -> _dt.timedelta | None:
        """The time to live: a ``timedelta`` counted from the commit, after which the version is
        hidden from every query and its content removed by gc, or None (kept until deleted). Set
        it (``timedelta``, None, or ``ArtifactTTL.INHERIT``: cairn's default, none) before logging
        or, on a logged version, then ``save()``. An inherited TTL is known only once logged."""
        if self._ttl is ArtifactTTL.INHERIT:
            if self._record is None or self._ttl_changed:
                raise ArtifactNotLoggedError(
                    "'Artifact.ttl' is inherited; it is known once the artifact is logged (and"
                    " saved)",
                    name="ttl",
                    obj=self,
                )
            return None
        return self._ttl

    @ttl.setter
    def ttl(self, value: _dt.timedelta | ArtifactTTL | None) -> None:
        check_ttl_allowed(self._type, self.is_link)
        self._ttl = check_ttl(value)
        self._ttl_changed = True

    @property
    def distributed_id(self) -> str | None:
        return self._distributed_id

    @distributed_id.setter
    def distributed_id(self, value: str | None) -> None:
        self._distributed_id = value

    @property
    def incremental(self) -> bool:
        return self._incremental

    @property
    def use_as(self) -> str | None:
        return self._use_as

    @property
    def state(self) -> str:
        """``PENDING`` until logged, then ``COMMITTED`` (or ``DELETED``)."""
        return PENDING if self._record is None else self._record.state

    @property
    def manifest(self) -> ArtifactManifest:
        return self._manifest

    @property
    def digest(self) -> str:
        """The version digest: the root digest of the manifest (equal content, equal digest)."""
        if self._record is not None and self._record.digest is not None:
            return self._record.digest
        if self._contents.local_base and not self._contents.changed:
            assert self._contents.root is not None
            return self._contents.root
        if self._base is not None and not self._contents.changed:
            assert self._base.digest is not None
            return self._base.digest
        base_root = self._contents.root
        if self._base is not None and not self._contents.local_base:
            base_root = self._base.digest
        if base_root is not None:
            from cairn.core import update_tree

            return update_tree(
                self._sess().reader, base_root, self._contents.changes(), _discard
            ).digest
        return _build_tree(self._contents, _discard).digest

    @property
    def size(self) -> int:
        """Total bytes of the files (references count with their recorded size)."""
        return self._contents.size

    @property
    def file_count(self) -> int:
        self._ensure_logged("file_count")
        return len(self._contents)

    @property
    def commit_hash(self) -> str:
        rec = self._ensure_logged("commit_hash")
        assert rec.digest is not None
        return rec.digest

    @property
    def created_at(self) -> str:
        return iso_time_micro(self._ensure_logged("created_at").created_at)

    @property
    def updated_at(self) -> str:
        return iso_time_micro(self._ensure_logged("updated_at").updated_at)

    def __repr__(self) -> str:
        return f"<Artifact {self.id or self.name}>"

    # -- adding files (sdk/_adding.py) -----------------------------------------------------------

    def _put(
        self, entry: ManifestEntry, overwrite: bool, local_path: str | None
    ) -> ArtifactManifestEntry:
        return _adding.put(self, entry, overwrite, local_path)

    def add_file(
        self,
        local_path: str,
        name: str | None = None,
        is_tmp: bool | None = False,
        skip_cache: bool | None = False,
        policy: Policy | None = "mutable",
        overwrite: bool = False,
    ) -> ArtifactManifestEntry:
        """Add one local file, as ``name`` (default: its base name) inside the artifact."""
        self._ensure_not_final("add_file")
        return _adding.add_file(
            self, local_path, name, is_tmp=is_tmp, policy=policy, overwrite=overwrite
        )

    def add_dir(
        self,
        local_path: str,
        name: str | None = None,
        skip_cache: bool | None = False,
        policy: Policy | None = "mutable",
        merge: bool = False,
    ) -> None:
        """Add every file below a local directory, under ``name`` (default: the root)."""
        self._ensure_not_final("add_dir")
        _adding.add_dir(self, local_path, name, policy=policy, merge=merge)

    @contextlib.contextmanager
    def new_file(
        self, name: str, mode: str = "x", encoding: str | None = None
    ) -> Iterator[IO[Any]]:
        """Open a new file to write; when the block ends it is added to the artifact as ``name``."""
        self._ensure_not_final("new_file")
        f, entry_path, overwrite = _adding.open_new_file(self, name, mode, encoding)
        with f:
            yield f
        self.add_file(f.name, name=entry_path, policy="immutable", overwrite=overwrite)

    def add_reference(
        self,
        uri: ArtifactManifestEntry | str,
        name: str | None = None,
        checksum: bool = True,
        max_objects: int | None = None,
    ) -> Sequence[ArtifactManifestEntry]:
        """Track content outside the store by URI; nothing is copied.

        ``file://`` files and directories, ``http(s)://`` URLs and ``s3://bucket/key`` objects or
        ``s3://bucket/prefix`` trees. With ``checksum`` each entry records what pins its content
        (digest, ETag, size, S3 version id) and a directory or prefix expands to at most
        ``max_objects`` entries; without, the URI alone is recorded. See ``_references.py``.
        """
        self._ensure_not_final("add_reference")
        return _adding.add_reference(self, uri, name, checksum=checksum, max_objects=max_objects)

    def add(self, obj: Any, name: str, overwrite: bool = False) -> ArtifactManifestEntry:
        """Add an object: a ``cairn.Table`` or any JSON-serialisable value, stored as JSON."""
        self._ensure_not_final("add")
        return _adding.add_object(self, obj, name, overwrite)

    def __setitem__(self, name: str, obj: Any) -> None:
        self.add(obj, name)

    def remove(self, item: str | os.PathLike[str] | ArtifactManifestEntry) -> None:
        """Remove an entry, a path, or every entry under a directory (``"dir"`` or ``"dir/"``)."""
        self._ensure_not_final("remove")
        _adding.remove(self, item)

    # -- versions ----------------------------------------------------------------------------------

    def new_draft(self) -> Artifact:
        """A new, unlogged artifact holding this version's files, to change and log as the next.

        Costs the same for ten files or ten million: nothing is copied or read until used.
        """
        rec = self._ensure_logged("new_draft")
        if rec.state != COMMITTED or rec.digest is None:
            raise UsageError(f"{self.name} is {rec.state}; only a committed version has drafts")
        draft = Artifact(rec.name, rec.type, description=rec.description)
        draft._metadata = copy.deepcopy(dict(rec.metadata))
        draft._session = self._sess()
        draft._base = rec
        draft._contents = Contents(draft._session.reader, rec.digest, rec.file_count, rec.size)
        draft._manifest = ArtifactManifest(draft, draft._contents)
        draft._local_paths = LocalPaths()
        return draft

    def diff(self, other: Artifact) -> ManifestDiff:
        """What changed from ``other`` to this artifact (both logged): added, removed, modified."""
        from cairn.core import diff_trees

        mine = self._ensure_logged("diff")
        theirs = other._ensure_logged("diff")
        assert mine.digest is not None and theirs.digest is not None
        return diff_trees(self._sess().reader, theirs.digest, mine.digest)

    def save(self, project: str | None = None, settings: Any = None) -> None:
        """Log the artifact (in the active run, or in a new run of job type ``auto``), or, if
        it is logged already, save changes to its description, metadata, aliases and tags."""
        if self._record is not None:
            save_changes(self)
        else:
            save_draft(self, project)

    def wait(self, timeout: int | None = None) -> Artifact:
        """Return once the artifact is logged. Logging in cairn finishes before log_artifact
        returns, so this only checks that it was logged."""
        self._ensure_logged("wait")
        return self

    def delete(self, delete_aliases: bool = False) -> None:
        """Delete this version (its number is never reused). Refuses a version with any alias,
        ``latest`` included, unless ``delete_aliases=True``."""
        rec = self._ensure_logged("delete")
        self._svc().delete_version(rec.id, delete_aliases=delete_aliases)
        self._record = self._svc().get_version(rec.id)
        self._aliases = []

    def json_encode(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "name": self.name, "digest": self.digest}


def _discard(digest: str, data: bytes) -> None:
    """A page sink that keeps nothing (for computing a digest only)."""
