"""Fixtures of the server tests: the embedded store and a server side by side."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest

from cairn.core import ManifestEntry, TreeBuilder, digest_bytes
from cairn.service import LocalService, Service
from cairn.service._http import HttpService
from tests._infra import CairnServer, reset_database


@pytest.fixture
def both(server_local: CairnServer, tmp_path: pathlib.Path) -> Iterator[dict[str, Service]]:
    """A fresh embedded store and a server (PostgreSQL + a directory) with a key on everything."""
    reset_database(server_local.db)
    embedded = LocalService.open(str(tmp_path / "embedded"))
    key = server_local.create_key("tester", "*/*", "write")
    server = HttpService(server_local.url, key, str(tmp_path / "cache"), retries=0)
    yield {"embedded": embedded, "server": server}
    embedded.close()
    server.close()


def stored_entries(svc: Service, prefix: bytes, n: int) -> list[ManifestEntry]:
    """``n`` tiny blobs (``prefix`` + their number) stored through ``svc``, as the entries of a
    tree of 500 files a directory, in path order (the memory tests' data)."""
    blobs = [(digest_bytes(b"%s%d" % (prefix, i)), b"%s%d" % (prefix, i)) for i in range(n)]
    svc.store_blobs(blobs)
    return [ManifestEntry(f"d{i // 500:03}/f{i:05}", d, len(b)) for i, (d, b) in enumerate(blobs)]


def stored_manifest(svc: Service, entries: list[ManifestEntry]) -> str:
    """The root of a manifest of ``entries``, its pages stored through ``svc``."""
    pages: list[tuple[str, bytes]] = []
    builder = TreeBuilder(lambda digest, data: pages.append((digest, data)))
    builder.extend(entries)
    root = builder.finish().digest
    svc.store_blobs(pages)
    return root


class Thief(NamedTuple):
    """Alice, who stored a secret; Bob, who stored a blob of his own and may not read hers; and
    Carol, who may read Bob's project ``bob/mine`` (the services of their keys)."""

    alice: Any
    bob: Any
    reader: Any
    secret: bytes
    own: bytes


def a_thief(app: Any, tmp_path: pathlib.Path) -> Thief:
    """``Thief``'s keys on the in-process server ``app`` (emptied first), their blobs stored."""
    reset_database(app.db)
    alice = app.service(app.create_key("alice"), str(tmp_path / "a"))
    bob = app.service(app.create_key("bob"), str(tmp_path / "b"))
    reader = app.service(app.create_key("carol", "bob/mine", "read"), str(tmp_path / "c"))
    secret, own = b"alice's weights", b"bob's own file"
    alice.store_blobs([(digest_bytes(secret), secret)])
    bob.store_blobs([(digest_bytes(own), own)])
    return Thief(alice, bob, reader, secret, own)
