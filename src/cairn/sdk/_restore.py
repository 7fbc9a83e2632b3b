"""Storing again the blobs a store lost while an artifact was logged (gc swept them, or they were
never stored there), from the local files they came from: ``Stager.restore``, which
``Stager.commit_with_blobs`` calls when a commit reports blobs missing."""

from __future__ import annotations

import os
from collections.abc import Sequence

from cairn.core import PageReader, digest_bytes
from cairn.errors import DigestMismatchError, ValidationError
from cairn.sdk import _progress
from cairn.sdk._settings import Settings
from cairn.sdk._staging import BATCH_LIMIT
from cairn.service import Service


def restore(
    service: Service,
    sources: dict[str, tuple[str, str]],
    trees: list[tuple[str, str, str]],
    digests: Sequence[str],
    flush_bytes: int,
    settings: Settings | None,
) -> None:
    """Store ``digests`` again from their local files: ``sources`` (digest -> directory, name)
    or the streamed ``trees`` (manifest root, local root, entry prefix); small ones many at a
    time (a transaction, or a request to a server, per ``flush_bytes``)."""
    batch: list[tuple[str, bytes]] = []
    size = 0
    from_trees = tree_sources(service, trees, {d for d in digests if d not in sources})
    with _progress.progress("storing", len(digests), None, settings=settings) as bar:
        for digest in digests:
            source = sources.get(digest) or from_trees.get(digest)
            if source is None:
                raise DigestMismatchError(
                    f"content {digest} is missing from the store at {service.location}"
                    " and no local file with it is known; add the file again"
                )
            path = os.path.join(*source)
            try:
                if os.path.getsize(path) < BATCH_LIMIT:
                    with open(path, "rb") as f:
                        data = f.read()
                    found: str = digest_bytes(data)
                    batch.append((found, data))
                    size += len(data)
                    stored = len(data)
                else:
                    info = service.store_file(path)
                    found, stored = info.digest, info.size
            except FileNotFoundError:
                raise ValidationError(
                    f"file {path} was added to the artifact but is gone; add it again"
                ) from None
            if found != digest:
                raise ValidationError(
                    f"file {path} changed after it was added to the artifact; add it again"
                )
            if size >= flush_bytes:
                service.store_blobs(batch)
                batch, size = [], 0
            bar.advance(1, stored)
        if batch:
            service.store_blobs(batch)


def tree_sources(
    service: Service, trees: list[tuple[str, str, str]], wanted: set[str]
) -> dict[str, tuple[str, str]]:
    """Local files (directory, name) of wanted digests, found in the streamed trees' pages."""
    found: dict[str, tuple[str, str]] = {}
    if not wanted or not trees:
        return found
    reader = PageReader(service.read_blob, capacity=8)
    for root, local_root, prefix in trees:
        for entry in reader.iter_from(root, prefix):
            if not entry.path.startswith(prefix):
                break
            if entry.digest in wanted and entry.digest not in found:
                local = os.path.join(local_root, *entry.path[len(prefix) :].split("/"))
                if os.path.isfile(local):  # else an entry a draft's directory kept
                    found[entry.digest] = os.path.split(local)
    return found
