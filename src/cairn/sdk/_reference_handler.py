"""What one URI scheme of references implements (``ReferenceHandler``) and the helpers every
scheme shares: entry paths, the ``max_objects`` limit, writing and checking fetched content."""

from __future__ import annotations

import os
import shutil
from typing import BinaryIO, Protocol

from cairn.core import (
    ManifestEntry,
    digest_from_hasher,
    names_content,
    new_hasher,
    normalize_entry_path,
)
from cairn.errors import ValidationError


class ReferenceHandler(Protocol):
    """What one URI scheme must do: list entries when adding, fetch one when downloading."""

    def entries(
        self, uri: str, name: str | None, *, checksum: bool, max_objects: int
    ) -> list[ManifestEntry]:
        """The entries that ``uri`` stands for (several for a directory or prefix)."""

    def fetch(self, entry: ManifestEntry, dest: str) -> None:
        """Write the entry's content to the new file ``dest``.

        Raises ``ContentChanged`` when the content differs from what was logged and
        ``FileNotFoundError`` when it is gone."""


class ContentChanged(Exception):
    """The referenced content is not what was logged (the message says how)."""


def remove_path(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.unlink(path)


def reference_entry_path(name: str, uri: str) -> str:
    try:
        return normalize_entry_path(name)
    except ValidationError as exc:
        raise ValidationError(
            f"reference {uri!r} cannot be stored as entry {name!r}: {exc}; pass name= to choose"
            " the path inside the artifact"
        ) from None


def too_many(uri: str, limit: int, what: str) -> ValidationError:
    return ValidationError(
        f"reference {uri!r} holds more than max_objects={limit} {what}; raise max_objects or"
        " reference a narrower path"
    )


class Sink:
    """Writes a stream to a file, counting and hashing it."""

    def __init__(self, dest: str) -> None:
        self._f: BinaryIO = open(dest, "wb")  # noqa: SIM115 - closed in close()
        self._hasher = new_hasher()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self._f.write(chunk)
        self._hasher.update(chunk)
        self.size += len(chunk)

    def close(self) -> str:
        self._f.close()
        return digest_from_hasher(self._hasher)


def check_fetched(entry: ManifestEntry, digest: str, size: int) -> None:
    if entry.size is not None and size != entry.size:
        raise ContentChanged(f"size was {entry.size}, is now {size}")
    if names_content(entry.digest) and digest != entry.digest:
        raise ContentChanged(f"digest was {entry.digest}, is now {digest}")
