"""What ``cairn sync`` asks a server: each page and blob of a version once, whether it is there
(then only the missing ones travel), the large blobs first (their upload begins while the small
ones are asked about and read), through the in-process tier."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import httpx

from cairn.core import ManifestEntry, digest_bytes
from cairn.sdk import SyncOptions, sync_stores
from cairn.service import CommitRequest, LocalService
from cairn.service._http import HttpService
from tests._infra import reset_database
from tests.conftest import InProcess


class _Asked(httpx.BaseTransport):
    """Passes requests on to the in-process server, keeping the digests of presence questions."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.asked: list[list[str]] = []  # the digests of each presence question
        self.batches = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/blobs/missing"):
            self.asked.append(json.loads(request.read())["digests"])
        self.batches += request.url.path.endswith("/blobs/batch")
        return self.inner.handle_request(request)


def test_a_sync_asks_about_each_blob_once(
    inprocess: InProcess, cairn_env: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    app = inprocess("sqlite", "local")
    reset_database(app.db)
    source = LocalService.open(str(cairn_env / "store"))  # the test's store, made already
    blobs = [(digest_bytes(b"file %d" % i), b"file %d" % i) for i in range(40)]
    source.store_blobs(blobs)
    changes = [(f"f{i:02}", ManifestEntry(f"f{i:02}", d, len(b))) for i, (d, b) in enumerate(blobs)]
    (tmp_path / "big.bin").write_bytes(b"big" * (3 << 20))  # 9 MiB: through the upload path
    big = source.store_file(str(tmp_path / "big.bin"))
    changes.append(("g.bin", ManifestEntry("g.bin", big.digest, big.size)))
    done = source.commit(CommitRequest("me", "p", "ds", "dataset", changes)).version
    assert done is not None and done.digest is not None
    asked = _Asked(app.transport)
    dest: Any = HttpService(app.url, app.create_key("me"), str(tmp_path / "cache"), transport=asked)
    try:
        report = sync_stores(source, dest, SyncOptions(entity="me"))
        assert report.copied == 1 and report.blobs_sent == 42  # the files and the one page
        # The large blob first, then the page and the small files, each asked about once (the
        # old code asked about them all at once, then about the small ones again when it
        # stored them).
        assert asked.asked[0] == [big.digest]
        every = [d for question in asked.asked for d in question]
        assert sorted(every) == sorted([done.digest, big.digest, *(d for d, _ in blobs)])
        assert asked.batches == 1
        assert dest.missing_blobs(every) == []
    finally:
        dest.close()
        source.close()
