"""Reading an artifact's files (W&B's members of ``Artifact``): entries, the objects added with
``add``, downloads, ``file``, ``checkout`` and ``verify``, over ``sdk/_download.py`` (loaded when
first used: logging an artifact needs none of it, nor its threads, ``uuid`` or ``logging``).
``ArtifactReading`` is a base of ``Artifact``: it reads the contents and session the artifact
holds."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from cairn.core import ManifestEntry, VersionRecord
from cairn.errors import ValidationError
from cairn.sdk._contents import Contents
from cairn.sdk._entry import ArtifactFiles, ArtifactManifestEntry
from cairn.sdk._scan import LocalPaths
from cairn.sdk._session import Session
from cairn.sdk._values import entry_name
from cairn.service import Service

if TYPE_CHECKING:
    from cairn.sdk._artifact import Artifact


class ArtifactReading:
    _name: str
    _contents: Contents
    _local_paths: LocalPaths

    if TYPE_CHECKING:
        # Artifact's own members, which these read.
        @property
        def name(self) -> str: ...

        def _ensure_logged(self, what: str) -> VersionRecord: ...
        def _sess(self) -> Session: ...
        def _svc(self) -> Service: ...

    def _artifact(self) -> Artifact:
        return cast("Artifact", self)

    def get(self, name: str) -> Any:
        """The object added with ``add(obj, name)`` (a ``cairn.Table``, ``JoinedTable``,
        ``PartitionedTable`` or the JSON value)."""
        self._ensure_logged("get")
        from cairn.sdk._objects import decode_object, object_paths
        from cairn.sdk._tables import get_composite

        composite = get_composite(self._artifact(), name)
        if composite is not None:
            return composite
        for path in object_paths(name):
            entry = self._contents.get(path)
            if entry is not None:
                return decode_object(path, self._svc().read_blob(entry.digest))
        return None

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def get_entry(self, name: str) -> ArtifactManifestEntry:
        """The entry at ``name`` (``KeyError`` if there is none)."""
        self._ensure_logged("get_entry")
        path = entry_name(name).replace(os.sep, "/").strip("/")
        entry = self._contents.get(path)
        if entry is None:
            raise KeyError(f"Path not contained in artifact {self.name}: {path!r}")
        return ArtifactManifestEntry(entry, self._artifact(), self._local_paths.get(path))

    def get_added_local_path_name(self, local_path: str | os.PathLike[str]) -> str | None:
        """The entry name under which the local file ``local_path`` was added, or None (W&B's
        ``Artifact.get_added_local_path_name``)."""
        return self._local_paths.name_of(os.path.abspath(os.fspath(local_path)))

    def get_path(self, name: str) -> ArtifactManifestEntry:
        """Deprecated spelling of ``get_entry``."""
        warnings.warn(
            "Artifact.get_path(name) is deprecated; use Artifact.get_entry(name)",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.get_entry(name)

    def files(self, names: Sequence[str] | None = None, per_page: int = 50) -> ArtifactFiles:
        """The artifact's files, read page by page (all of them, or those in ``names``)."""
        self._ensure_logged("files")
        return ArtifactFiles(self._artifact(), names)

    def _default_root(self, include_version: bool = True) -> str:
        from cairn.sdk._download import default_root

        return default_root(self._sess().settings, self.name if include_version else self._name)

    def download(
        self,
        root: str | None = None,
        allow_missing_references: bool = False,
        skip_cache: bool | None = None,
        path_prefix: str | None = None,
        multipart: bool | None = None,
    ) -> str:
        """Write the artifact's files under ``root`` (default ``./artifacts/<name>:<version>``).

        Files already there with the right content are kept; every file written is verified.
        With ``path_prefix`` only entries whose path starts with it are written.
        """
        self._ensure_logged("download")
        from cairn.sdk._download import download_contents

        return download_contents(
            self._sess(),
            self._contents,
            os.fspath(root) if root is not None else self._default_root(),
            path_prefix=path_prefix,
            allow_missing_references=allow_missing_references,
        )

    def _download_entry(self, entry: ManifestEntry, root: str | None) -> str:
        from cairn.sdk._download import download_entry

        root = os.fspath(root) if root is not None else self._default_root()
        return download_entry(self._sess(), entry, root)

    def file(self, root: str | None = None) -> str:
        """Download a single-file artifact and return the file's path."""
        self._ensure_logged("file")
        if len(self._contents) != 1:
            raise ValidationError(
                f"Artifact.file() needs an artifact with exactly one file; {self.name} has"
                f" {len(self._contents)}: use download() instead"
            )
        entry = next(iter(self._contents))
        return self._download_entry(entry, root)

    def checkout(self, root: str | None = None) -> str:
        """Make ``root`` hold exactly the artifact's files: download, and delete any others."""
        self._ensure_logged("checkout")
        root = os.fspath(root) if root is not None else self._default_root(include_version=False)
        from cairn.sdk._download import remove_extra_files

        remove_extra_files(self._contents, root)
        return self.download(root=root)

    def verify(self, root: str | None = None) -> None:
        """Check that ``root`` holds exactly the artifact's files with their content.

        Raises ``ValueError`` naming the first file (in path order) that is extra, missing or
        different. References are checked only where they were recorded with a checksum.
        """
        self._ensure_logged("verify")
        from cairn.sdk._download import verify_contents

        root = os.fspath(root) if root is not None else self._default_root()
        verify_contents(self._sess(), self._contents, root, self.name)
