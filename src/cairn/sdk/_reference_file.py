"""``file://`` references: files and directories on this machine or a shared file system."""

from __future__ import annotations

import os
import shutil
from urllib.parse import quote, unquote, urlparse

from cairn.core import ManifestEntry, names_content
from cairn.errors import ValidationError
from cairn.sdk._reference_handler import Sink, check_fetched, reference_entry_path, too_many
from cairn.sdk._statcache import StatCache, file_digest
from cairn.storage import CHUNK


def file_path_of_uri(uri: str) -> str:
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise ValidationError(f"{uri!r} is not a file:// URI")
    if parsed.netloc not in ("", "localhost"):
        raise ValidationError(f"{uri!r} names another host; file:// references must be local")
    return unquote(parsed.path)


class FileReferences:
    """``file://`` files and directories (on this machine or a shared file system)."""

    def __init__(self, cache: StatCache | None) -> None:
        self._cache = cache

    def entries(
        self, uri: str, name: str | None, *, checksum: bool, max_objects: int
    ) -> list[ManifestEntry]:
        path = file_path_of_uri(uri)
        if not os.path.exists(path):
            raise ValidationError(f"reference {uri!r}: {path} does not exist")
        base_name = name if name is not None else os.path.basename(path.rstrip("/"))
        if not checksum and os.path.isfile(path):
            return [ManifestEntry(reference_entry_path(base_name, uri), uri, None, uri)]
        if os.path.isfile(path):
            digest = file_digest(path, self._cache)
            return [
                ManifestEntry(
                    reference_entry_path(base_name, uri), digest, os.stat(path).st_size, uri
                )
            ]
        out: list[ManifestEntry] = []
        prefix = reference_entry_path(name, uri) + "/" if name else ""
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames.sort()
            for fname in sorted(filenames):
                if len(out) >= max_objects:
                    raise too_many(uri, max_objects, "files")
                full = os.path.join(dirpath, fname)
                rel = os.path.relpath(full, path).replace(os.sep, "/")
                ref = "file://" + quote(full)
                if not checksum:
                    # A directory recorded without checksums still lists its files (by URI).
                    out.append(
                        ManifestEntry(reference_entry_path(prefix + rel, uri), ref, None, ref)
                    )
                    continue
                out.append(
                    ManifestEntry(
                        reference_entry_path(prefix + rel, uri),
                        file_digest(full, self._cache),
                        os.stat(full).st_size,
                        ref,
                    )
                )
        return out

    def fetch(self, entry: ManifestEntry, dest: str) -> None:
        assert entry.ref is not None
        src = file_path_of_uri(entry.ref)
        if not os.path.exists(src):
            raise FileNotFoundError(f"{src} does not exist any more")
        if not names_content(entry.digest):
            # Recorded without a checksum: copy whatever is there now.
            if os.path.isdir(src):
                shutil.copytree(src, dest)
            else:
                shutil.copyfile(src, dest)
            return
        sink = Sink(dest)
        try:
            with open(src, "rb") as f:
                while chunk := f.read(CHUNK):
                    sink.write(chunk)
        finally:
            digest = sink.close()
        check_fetched(entry, digest, sink.size)
