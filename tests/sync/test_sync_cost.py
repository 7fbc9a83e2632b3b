"""What ``cairn sync`` asks a server: each page and blob of a version once, whether it is there
(then only the missing ones travel), the large blobs first (their upload begins while the small
ones are asked about and read), through the in-process tier."""

from __future__ import annotations

import json
import pathlib
import threading
from collections.abc import Sequence
from typing import Any, cast

import httpx
import pytest

from cairn.core import ManifestEntry, digest_bytes
from cairn.sdk import SyncOptions, _sync_copy, sync_stores
from cairn.service import CommitRequest, LocalService, Service
from cairn.service._http import HttpService
from tests._infra import reset_database
from tests.conftest import InProcess


class _Asked(httpx.BaseTransport):
    """Passes requests on to the in-process server, keeping the digests of presence questions
    and the order in which uploads' parts, completions and batches began and ended."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.asked: list[list[str]] = []  # the digests of each presence question
        self.batches = 0
        self.order: list[str] = []  # "part begun", "part ended", "batch begun", ...

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/blobs/missing"):
            self.asked.append(json.loads(request.read())["digests"])
        self.batches += path.endswith("/blobs/batch")
        kind = next((k for k in ("parts/", "complete", "blobs/batch") if k in path), None)
        name = {"parts/": "part", "complete": "complete", "blobs/batch": "batch"}.get(kind or "")
        if name:
            self.order.append(f"{name} begun")
        try:
            return self.inner.handle_request(request)
        finally:
            if name:
                self.order.append(f"{name} ended")


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
        # The small ones went once the large one's content had left (while the server hashed
        # and stored it), not beside its parts (the old code sent them at once).
        order = asked.order
        last_part_ended = len(order) - 1 - order[::-1].index("part ended")
        assert order.index("batch begun") > last_part_ended
    finally:
        dest.close()
        source.close()


class _Destination:
    """A destination store that keeps the order of what the copier asks of it: the content of
    a large blob leaves (``sent``) before it is stored, as a server's upload does."""

    def __init__(self, inner: LocalService, large: str) -> None:
        self.inner = inner
        self.large = large
        self.events: list[str] = []
        self.small_asked = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def missing_blobs(self, digests: Sequence[str]) -> list[str]:
        if self.large not in digests:
            self.small_asked.set()
        return self.inner.missing_blobs(digests)

    def store_blob_file(self, path: str, digest: str, size: int, **kw: Any) -> None:
        # Both codes ask about the small blobs while the large one's upload begins.
        assert self.small_asked.wait(30)  # a guard only
        self.events.append("content")
        if kw.get("sent") is not None:
            self.events.append("sent")  # before: the small ones may follow at once
            kw["sent"]()
        self.inner.store_blob_file(path, digest, size)
        self.events.append("stored")

    def store_blobs(self, items: Sequence[tuple[str, bytes]], **kw: Any) -> None:
        self.events.append("small")
        self.inner.store_blobs(items, **kw)


def test_small_blobs_go_once_the_large_ones_content_has_left(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sync sends a version's small blobs once its first large blob's content has left
    (``store_blob_file``'s ``sent``), while the destination verifies and stores it; the old
    code sent them beside the large blob's parts (one server event loop and two cores shared:
    the parts took longer by what the small ones took). Fails on the old code: no ``sent``."""
    monkeypatch.setattr(_sync_copy, "_MEMORY_LIMIT", 1 << 20)  # 1 MiB is large here
    source = LocalService.open(str(tmp_path / "src"))
    blobs = [(digest_bytes(b"small %d" % i), b"small %d" % i) for i in range(20)]
    source.store_blobs(blobs)
    changes = [(f"s{i:02}", ManifestEntry(f"s{i:02}", d, len(b))) for i, (d, b) in enumerate(blobs)]
    (tmp_path / "big.bin").write_bytes(b"large" * (300 << 10))  # 1.5 MiB
    big = source.store_file(str(tmp_path / "big.bin"))
    changes.insert(0, ("big.bin", ManifestEntry("big.bin", big.digest, big.size)))
    assert source.commit(CommitRequest("me", "p", "ds", "dataset", changes)).version is not None
    dest = _Destination(LocalService.open(str(tmp_path / "dst")), big.digest)
    try:
        report = sync_stores(source, cast(Service, dest), SyncOptions())
        assert report.copied == 1 and report.blobs_sent == 22  # the files and the one page
        events = dest.events
        assert events[:2] == ["content", "sent"] and "small" in events
        assert events.index("small") > events.index("sent")
    finally:
        dest.inner.close()
        source.close()
