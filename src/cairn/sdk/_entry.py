"""Manifest entries and the manifest as users see them (W&B's ArtifactManifestEntry/ArtifactManifest)."""

from __future__ import annotations

import itertools
import os
from collections.abc import ItemsView, Iterator, KeysView, Mapping, Sequence, ValuesView
from typing import TYPE_CHECKING, Any

from cairn.core import ManifestEntry
from cairn.sdk._contents import Contents

if TYPE_CHECKING:
    from cairn.sdk._artifact import Artifact


class ArtifactManifestEntry:
    """One file of an artifact: ``path`` inside it, ``digest``, ``size``, and ``ref`` for references."""

    __slots__ = ("_artifact", "_entry", "local_path")

    def __init__(
        self, entry: ManifestEntry, artifact: Artifact | None = None, local_path: str | None = None
    ) -> None:
        self._entry = entry
        self._artifact = artifact
        self.local_path = local_path

    @property
    def path(self) -> str:
        return self._entry.path

    @property
    def name(self) -> str:
        """The entry's path (the name W&B's file listings use)."""
        return self._entry.path

    @property
    def digest(self) -> str:
        return self._entry.digest

    @property
    def size(self) -> int | None:
        return self._entry.size

    @property
    def ref(self) -> str | None:
        return self._entry.ref

    @property
    def extra(self) -> dict[str, Any]:
        return dict(self._entry.extra or {})

    @property
    def birth_artifact_id(self) -> str | None:
        return None

    def parent_artifact(self) -> Artifact:
        if self._artifact is None:
            raise ValueError(f"entry {self.path!r} does not belong to an artifact")
        return self._artifact

    def ref_target(self) -> str:
        """The URI of a reference entry (``ValueError`` for files kept in the store)."""
        if self.ref is None:
            raise ValueError(f"entry {self.path!r} is not a reference")
        return self.ref

    def ref_url(self) -> str:
        """A URI naming this entry of its artifact: ``cairn-artifact://<version id>/<path>``."""
        return f"cairn-artifact://{self.parent_artifact().id}/{self.path}"

    def download(self, root: str | None = None, skip_cache: bool | None = None) -> str:
        """Download this one file under ``root`` (the artifact's default directory if None)."""
        artifact = self.parent_artifact()
        return artifact._download_entry(self._entry, root)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ArtifactManifestEntry):
            return NotImplemented
        return self._entry == other._entry

    def __hash__(self) -> int:
        return hash((self.path, self.digest))

    def __repr__(self) -> str:
        ref = f", ref={self.ref!r}" if self.ref else ""
        return f"ArtifactManifestEntry(path={self.path!r}, digest={self.digest!r}, size={self.size}{ref})"


class ManifestEntries(Mapping[str, ArtifactManifestEntry]):
    """``artifact.manifest.entries``: a read-only mapping, path -> entry, in path order.

    Pages of a logged manifest are read only when a lookup or iteration reaches them.
    """

    def __init__(self, artifact: Artifact, contents: Contents) -> None:
        self._artifact = artifact
        self._contents = contents

    def _wrap(self, entry: ManifestEntry) -> ArtifactManifestEntry:
        return ArtifactManifestEntry(
            entry, self._artifact, self._artifact._local_paths.get(entry.path)
        )

    def __getitem__(self, path: str) -> ArtifactManifestEntry:
        entry = self._contents.get(path)
        if entry is None:
            raise KeyError(path)
        return self._wrap(entry)

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and self._contents.get(path) is not None

    def __iter__(self) -> Iterator[str]:
        return (e.path for e in self._contents)

    def __len__(self) -> int:
        return len(self._contents)

    def keys(self) -> KeysView[str]:
        return KeysView(self)

    def values(self) -> ValuesView[ArtifactManifestEntry]:
        return _Values(self)

    def items(self) -> ItemsView[str, ArtifactManifestEntry]:
        return _Items(self)

    def _stream(self, prefix: str = "") -> Iterator[ArtifactManifestEntry]:
        source = self._contents.iter_prefix(prefix) if prefix else iter(self._contents)
        return (self._wrap(e) for e in source)


class _Values(ValuesView[ArtifactManifestEntry]):
    def __init__(self, entries: ManifestEntries) -> None:
        super().__init__(entries)
        self._entries = entries

    def __iter__(self) -> Iterator[ArtifactManifestEntry]:
        return self._entries._stream()


class _Items(ItemsView[str, ArtifactManifestEntry]):
    def __init__(self, entries: ManifestEntries) -> None:
        super().__init__(entries)
        self._entries = entries

    def __iter__(self) -> Iterator[tuple[str, ArtifactManifestEntry]]:
        return ((e.path, e) for e in self._entries._stream())


class ArtifactManifest:
    """The files of an artifact. ``entries`` maps path -> entry."""

    def __init__(self, artifact: Artifact, contents: Contents) -> None:
        self._artifact = artifact
        self._contents = contents
        self.entries = ManifestEntries(artifact, contents)

    def __len__(self) -> int:
        return len(self._contents)

    def get_entry_by_path(self, path: str) -> ArtifactManifestEntry | None:
        return self.entries.get(path)

    def get_entries_in_directory(self, directory: str) -> list[ArtifactManifestEntry]:
        prefix = directory.strip("/") + "/" if directory.strip("/") else ""
        return [self.entries._wrap(e) for e in self._contents.iter_prefix(prefix)]

    def digest(self) -> str:
        return self._artifact.digest

    def to_manifest_json(self) -> dict[str, Any]:
        """The entries as plain JSON (reads every page; meant for small manifests and export)."""
        contents: dict[str, Any] = {}
        for e in self._contents:
            row: dict[str, Any] = {"digest": e.digest, "size": e.size}
            if e.ref is not None:
                row["ref"] = e.ref
            if e.extra:
                row["extra"] = dict(e.extra)
            contents[e.path] = row
        return {"version": 1, "contents": contents}


class ArtifactFiles(Sequence[ArtifactManifestEntry]):
    """The files of a logged artifact, read page by page as they are iterated."""

    def __init__(self, artifact: Artifact, names: Sequence[str] | None) -> None:
        self._artifact = artifact
        self._names = list(names) if names is not None else None
        self._cache: list[ArtifactManifestEntry] | None = None

    def __iter__(self) -> Iterator[ArtifactManifestEntry]:
        art = self._artifact
        if self._names is not None:
            for name in self._names:
                entry = art._contents.get(name)
                if entry is not None:
                    yield ArtifactManifestEntry(entry, art)
            return
        for entry in art._contents:
            yield ArtifactManifestEntry(entry, art)

    def __len__(self) -> int:
        if self._names is not None:
            return sum(1 for _ in self)
        return len(self._artifact._contents)

    def __getitem__(self, index: Any) -> Any:
        if self._cache is None and isinstance(index, int) and index >= 0:
            # Read only up to the entry asked for, never the whole (maybe huge) list.
            for found in itertools.islice(self, index, None):
                return found
            raise IndexError(f"file index {index} out of range")
        if self._cache is None:
            self._cache = list(self)
        return self._cache[index]

    def __repr__(self) -> str:
        return f"<ArtifactFiles of {self._artifact.name}: {len(self)} files>"


def as_fs_path(root: str, entry_path: str) -> str:
    """Where an entry goes under ``root`` on this operating system."""
    return os.path.join(root, *entry_path.split("/"))
