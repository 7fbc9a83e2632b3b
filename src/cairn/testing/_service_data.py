"""What the ServiceTests suites make: stored blobs as entries, commit requests, manifest pages."""

from __future__ import annotations

from cairn.core import ManifestEntry, TreeBuilder, digest_bytes
from cairn.service import (
    CommitRequest,
    Service,
)


def stored_entry(service: Service, data: bytes, path: str) -> ManifestEntry:
    d = digest_bytes(data)
    service.store_blobs([(d, data)])
    return ManifestEntry(path, d, len(data))


def commit_request(service: Service, entries: list[ManifestEntry], **kw: object) -> CommitRequest:
    return CommitRequest(
        entity="me",
        project="proj",
        name=str(kw.pop("name", "ds")),
        type=str(kw.pop("type", "dataset")),
        changes=sorted(((e.path, e) for e in entries), key=lambda c: c[0]),
        **kw,  # type: ignore[arg-type]
    )


def manifest_pages(entries: list[ManifestEntry]) -> tuple[str, list[tuple[str, bytes]]]:
    pages: list[tuple[str, bytes]] = []
    root = TreeBuilder(lambda d, data: pages.append((d, data)))
    root.extend(entries)
    return root.finish().digest, pages
