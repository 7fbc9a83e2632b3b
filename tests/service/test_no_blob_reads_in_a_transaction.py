"""No blob I/O inside a catalog write transaction: a server's store keeps grants (which blobs a
project's versions refer to), and those of a client-written manifest and of a new link are read
from the manifest's pages before the transaction, never inside it (an object store's GETs would
hold the catalog's write lock; a ``CatalogBlobStore`` reads through the same catalog). Each test
would fail if a blob were read while a write transaction is open, and checks that the grants are
still recorded."""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cairn.catalog import Catalog, readable_blobs
from cairn.core import REGISTRY_ENTITY, ManifestEntry, TreeBuilder, digest_bytes
from cairn.service import CommitRequest, LocalService
from cairn.storage import BlobStore, LocalBlobStore


class _Watch:
    """Whether a catalog write transaction is open, and the blob calls made while one was."""

    def __init__(self) -> None:
        self.open = False
        self.inside: list[str] = []


class _WatchedStore:
    """A blob store that notes each call made while the watch's transaction is open."""

    def __init__(self, inner: BlobStore, watch: _Watch) -> None:
        self._inner = inner
        self._watch = watch

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self._watch.open:
                self._watch.inside.append(name)
            return attr(*args, **kwargs)

        return call


def _watched(catalog: Catalog, watch: _Watch, monkeypatch: pytest.MonkeyPatch) -> None:
    write = catalog.write

    def watched_write(fn: Callable[[Any], Any]) -> Any:
        def inside(tx: Any) -> Any:
            watch.open = True
            try:
                return fn(tx)
            finally:
                watch.open = False

        return write(inside)

    monkeypatch.setattr(catalog, "write", watched_write)


@pytest.fixture
def parts(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Catalog, BlobStore, _Watch]]:
    catalog = Catalog(f"sqlite:///{tmp_path}/catalog.sqlite", create=True)
    watch = _Watch()
    _watched(catalog, watch, monkeypatch)
    blobs = LocalBlobStore(str(tmp_path / "blobs"))
    yield catalog, _WatchedStore(blobs, watch), watch  # type: ignore[misc]
    blobs.close()
    catalog.dispose()


def _server_like(catalog: Catalog, blobs: BlobStore) -> LocalService:
    """A ``LocalService`` as a server opens it (grants kept), with a fresh page cache."""
    return LocalService(catalog, blobs, location="test", entity="server", track_blob_owners=True)


def _manifest(blobs: BlobStore, n: int) -> tuple[str, list[str]]:
    """A client-written manifest of ``n`` files (pages and content stored): its root and every
    blob it names."""
    content = [f"file {i}".encode() for i in range(n)]
    blobs.put_many([(digest_bytes(c), c) for c in content])
    pages: list[tuple[str, bytes]] = []
    builder = TreeBuilder(lambda d, data: pages.append((d, data)))
    builder.extend(
        ManifestEntry(f"f/{i:05}", digest_bytes(c), len(c)) for i, c in enumerate(content)
    )
    root = builder.finish().digest
    blobs.put_many(pages)
    return root, [d for d, _ in pages] + [digest_bytes(c) for c in content]


def _granted(catalog: Catalog, entity: str, project: str, digests: list[str]) -> set[str]:
    return readable_blobs(catalog, "nobody", [(entity, project)], digests)


def test_a_client_written_manifest_is_read_before_its_transaction(
    parts: tuple[Catalog, BlobStore, _Watch],
) -> None:
    catalog, blobs, watch = parts
    root, named = _manifest(blobs, 3000)  # several leaves and an index page
    svc = _server_like(catalog, blobs)
    request = CommitRequest(
        entity="me", project="p", name="ds", type="dataset", changes=[], manifest=root
    )
    result = svc.commit(request)
    assert result.created and result.version is not None
    assert result.version.file_count == 3000
    assert watch.inside == []
    assert _granted(catalog, "me", "p", named) == set(named)  # the grants are recorded
    # The same manifest again (known: not checked again), still granted to another project.
    again = svc.commit(dataclasses.replace(request, project="q"))
    assert again.created and watch.inside == []
    assert _granted(catalog, "me", "q", named) == set(named)


def test_a_new_link_is_read_before_its_transaction(
    parts: tuple[Catalog, BlobStore, _Watch],
) -> None:
    catalog, blobs, watch = parts
    root, named = _manifest(blobs, 3000)
    first = _server_like(catalog, blobs)
    source = first.commit(
        CommitRequest(
            entity="me", project="p", name="ds", type="dataset", changes=[], manifest=root
        )
    ).version
    assert source is not None
    watch.inside.clear()
    svc = _server_like(catalog, blobs)  # its page cache empty: the pages must be read
    link = svc.link_version(source.id, "me", "wandb-registry-dataset", "best")
    assert link.source_version_id == source.id
    assert watch.inside == []
    assert _granted(catalog, REGISTRY_ENTITY, "wandb-registry-dataset", named) == set(named)
    # Linking again gives the existing link aliases: nothing to grant, nothing read.
    again = _server_like(catalog, blobs).link_version(
        source.id, "me", "wandb-registry-dataset", "best", aliases=["prod"]
    )
    assert again.id == link.id and "prod" in again.aliases
    assert watch.inside == []
    # A link into a plain project, and a link of a link (its real source's blobs).
    plain = _server_like(catalog, blobs).link_version(link.id, "me", "other", "copy")
    assert plain.source_version_id == source.id and watch.inside == []
    assert _granted(catalog, "me", "other", named) == set(named)


def test_a_link_removed_while_it_is_made_is_granted_too(
    parts: tuple[Catalog, BlobStore, _Watch], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The link existed when the blobs were (not) read, and was removed before the link's
    transaction: the blobs are read then, outside it, and the new link is granted them."""
    catalog, blobs, watch = parts
    root, named = _manifest(blobs, 50)
    svc = _server_like(catalog, blobs)
    source = svc.commit(
        CommitRequest(
            entity="me", project="p", name="ds", type="dataset", changes=[], manifest=root
        )
    ).version
    assert source is not None
    old = svc.link_version(source.id, "me", "other", "copy")
    registries = svc._registries
    read = registries._granted_by_new_link

    def unlinked_meanwhile(*args: Any) -> Any:
        found = read(*args)
        svc.unlink_version(old.id)
        return found

    monkeypatch.setattr(registries, "_granted_by_new_link", unlinked_meanwhile)
    watch.inside.clear()
    # The read finds the old link (nothing to read), then it is removed: the link is new.
    again = svc.link_version(source.id, "me", "other", "copy")
    assert again.id != old.id and again.source_version_id == source.id
    assert watch.inside == []
    assert _granted(catalog, "me", "other", named) == set(named)
