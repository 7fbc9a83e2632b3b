"""Logging and upserting while a gc with grace 0 sweeps what was just stored (issue 12's chaos
finding): the SDK stores the blobs again and the log goes through; nothing is ever torn.

The gc is the real one, run on the real store at the worst moment: just before the service
checks the blobs (a ``Service`` wrapper, as a second process's gc would land there)."""

from __future__ import annotations

import os
import pathlib
import time
from collections.abc import Iterator
from typing import Any

import pytest

import cairn
from cairn.errors import ArtifactNotFoundError, BlobNotFoundError, CommError
from cairn.sdk import _session, _settings
from cairn.sdk._statcache import RACY_NS
from cairn.service import LocalService, StageRequest
from tests.conftest import write

pytestmark = pytest.mark.embedded_only


class GcFirst:
    """Forwards to ``inner``; the first ``times`` calls of ``stage``, ``commit`` and ``finish``
    each run a gc with grace 0 on the store before they reach it."""

    def __init__(self, inner: LocalService, times: int) -> None:
        self._inner = inner
        self.left = times
        self.removed = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _gc(self) -> None:
        if self.left > 0:
            self.left -= 1
            self.removed += self._inner.collect_garbage(grace_seconds=0).removed_blobs

    def stage(self, request: Any) -> Any:
        self._gc()
        return self._inner.stage(request)

    def commit(self, request: Any) -> Any:
        self._gc()
        return self._inner.commit(request)

    def finish(self, request: Any) -> Any:
        self._gc()
        return self._inner.finish(request)


@pytest.fixture
def racing(cairn_env: pathlib.Path) -> Iterator[Any]:
    """The process's service for the test's store, wrapped: ``racing(times)``."""
    settings = _settings.Settings.from_env()
    session = _session.session_for(settings)
    inner = session.service
    assert isinstance(inner, LocalService)
    key = (settings.dir, settings.base_url, settings.api_key, os.getpid())

    def install(times: int) -> GcFirst:
        wrapped = GcFirst(inner, times)
        _session._sessions[key] = session.over(wrapped)  # type: ignore[arg-type]
        return wrapped

    yield install
    _session._sessions[key] = session


def files(n: int) -> list[str]:
    # Large (a file in the store) and small (a row) blobs alike.
    return [write(f"f{i}.bin", os.urandom(200_000 if i % 2 else 3000)) for i in range(n)]


def test_an_upsert_stores_again_what_a_gc_swept_before_it_staged(racing: Any) -> None:
    gc = racing(2)  # the upsert's stage and its first retry each find their blobs swept
    art = cairn.Artifact("shards", "dataset")
    for path in files(4):
        art.add_file(path)
    with cairn.init(project="p") as run:
        run.upsert_artifact(art, distributed_id="d1")
        done = cairn.Artifact("shards", "dataset")
        run.finish_artifact(done, distributed_id="d1")
    assert gc.removed >= 4 and gc.left == 0
    got = cairn.Api().artifact("p/shards:latest")
    assert sorted(e for e in got.manifest.entries) == ["f0.bin", "f1.bin", "f2.bin", "f3.bin"]
    got.download(root="out")
    for name in ("f0.bin", "f1.bin", "f2.bin", "f3.bin"):
        assert pathlib.Path("out", name).read_bytes() == pathlib.Path(name).read_bytes()
    assert gc.verify().ok  # every committed version's blobs present and intact


def test_a_log_stores_again_what_a_gc_swept_twice(racing: Any) -> None:
    gc = racing(2)  # the commit and its first retry both lose their blobs
    art = cairn.Artifact("model", "model")
    for path in files(3):
        art.add_file(path)
    with cairn.init(project="p") as run:
        run.log_artifact(art)
    assert gc.removed >= 3 and gc.left == 0
    assert cairn.Api().artifact("p/model:v0").download(root="out")
    assert gc.verify().ok  # every committed version's blobs present and intact


def test_a_gc_that_never_stops_sweeping_is_reported_not_torn(racing: Any) -> None:
    gc = racing(100)
    art = cairn.Artifact("model", "model")
    art.add_file(files(1)[0])
    with cairn.init(project="p") as run:
        with pytest.raises(CommError, match="grace period of 0"):
            run.log_artifact(art)
        with pytest.raises(ArtifactNotFoundError):  # nothing committed, not even a collection
            gc.list_versions(run.entity, "p", "model")
    assert gc.verify().ok


def test_staging_missing_blobs_is_refused_alike_with_blob_not_found(
    cairn_env: pathlib.Path,
) -> None:
    """The embedded store answers as a server does (BlobNotFoundError), so the SDK's retry
    works the same on both."""
    from cairn.core import ManifestEntry

    svc = _session.session_for(_settings.Settings.from_env()).service
    entry = ManifestEntry("x", "sha256:" + "ab" * 32, 1)
    request = StageRequest("me", "p", "ds", "dataset", "d", [("x", entry)])
    with pytest.raises(BlobNotFoundError, match="must be uploaded before staging"):
        svc.stage(request)


def test_an_upsert_of_a_known_file_whose_blob_was_swept_stores_it_again(
    cairn_env: pathlib.Path,
) -> None:
    """On the embedded store an upsert asks the service at once (no lookup of its own first):
    a file the stat cache knows, whose blob a gc swept since, is refused by the stage
    (BlobNotFoundError), stored again from the file and staged."""
    path = files(1)[0]
    time.sleep(2 * RACY_NS / 1e9)  # no longer racy: the stat cache keeps it
    with cairn.init(project="p") as run:
        first = cairn.Artifact("once", "dataset")
        first.add_file(path)
        run.log_artifact(first)
    cairn.Api().artifact("p/once:v0").delete(delete_aliases=True)
    svc = _session.session_for(_settings.Settings.from_env()).service
    assert isinstance(svc, LocalService)  # the real service: the stager's own path
    assert svc.collect_garbage(grace_seconds=0).removed_blobs >= 1
    with cairn.init(project="p") as run:
        art = cairn.Artifact("shards", "dataset")
        art.add_file(path)  # known to the stat cache: not read again
        run.upsert_artifact(art, distributed_id="d1")
        run.finish_artifact(cairn.Artifact("shards", "dataset"), distributed_id="d1")
    cairn.Api().artifact("p/shards:latest").download(root="out")
    assert pathlib.Path("out", "f0.bin").read_bytes() == pathlib.Path(path).read_bytes()
    assert svc.verify().ok
