"""Fixtures of the server tests: the embedded store and a server side by side."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from cairn.core import ManifestEntry, digest_bytes
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
