"""Garbage collection and verification on LocalService: what is live, what is spared, the lock."""

from __future__ import annotations

import contextlib
import pathlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from cairn.core import ManifestEntry, digest_bytes
from cairn.errors import CommError
from cairn.service import CommitRequest, FinishRequest, LocalService, StageRequest


@pytest.fixture
def svc(tmp_path: pathlib.Path) -> Iterator[LocalService]:
    service = LocalService.open(str(tmp_path / "store"))
    yield service
    service.close()


def blob(svc: LocalService, data: bytes, path: str) -> ManifestEntry:
    d = digest_bytes(data)
    svc.store_blobs([(d, data)])
    return ManifestEntry(path, d, len(data))


def commit(svc: LocalService, *entries: ManifestEntry, name: str = "ds", base: str | None = None):  # type: ignore[no-untyped-def]
    req = CommitRequest(
        entity="me",
        project="p",
        name=name,
        type="dataset",
        changes=sorted(((e.path, e) for e in entries), key=lambda c: c[0]),
        base_version_id=base,
    )
    result = svc.commit(req)
    assert result.version is not None, result.missing
    return result.version


def present(svc: LocalService, *entries: ManifestEntry) -> list[bool]:
    found = svc.blobs.has_many(e.digest for e in entries)
    return [e.digest in found for e in entries]


def test_deleted_versions_are_garbage_and_shared_content_is_not(svc: LocalService) -> None:
    shared, old, new = blob(svc, b"shared", "s"), blob(svc, b"old", "o"), blob(svc, b"new", "n")
    v0 = commit(svc, shared, old)
    v1 = commit(svc, shared, new)
    stray = blob(svc, b"never used", "x")
    report = svc.collect_garbage(grace_seconds=0, dry_run=True)
    assert report.removed_blobs == 1 and present(svc, stray) == [True]  # dry run
    svc.delete_version(v0.id, delete_aliases=True)
    young = svc.collect_garbage(grace_seconds=3600)
    assert young.removed_blobs == 0 and young.young_blobs == 3  # old, stray, v0's page
    report = svc.collect_garbage(grace_seconds=0)
    assert (report.removed_blobs, report.live_blobs) == (3, 3)  # live: shared, new, v1's page
    assert present(svc, shared, old, new, stray) == [True, False, True, False]
    assert v0.digest is not None and v1.digest is not None
    assert svc.blobs.has_many([v0.digest, v1.digest]) == {v1.digest}
    assert svc.verify().ok


def test_pending_versions_keep_their_staged_blobs_and_their_base(svc: LocalService) -> None:
    a, b = blob(svc, b"a", "a"), blob(svc, b"b", "b")
    base = commit(svc, a)
    common: dict[str, Any] = {
        "entity": "me",
        "project": "p",
        "name": "ds",
        "type": "dataset",
        "distributed_id": "g",
        "base_version_id": base.id,
    }
    pending = svc.stage(StageRequest(**common, changes=[("b", b)]))
    # The base is deleted while a draft based on it is pending: its pages must stay.
    svc.delete_version(base.id, delete_aliases=True)
    assert svc.collect_garbage(grace_seconds=0).removed_blobs == 0
    done = svc.finish(FinishRequest(**common, changes=[]))
    assert done.version is not None and done.version.file_count == 2
    assert svc.verify().ok
    # Discarded upserts leave garbage behind.
    c = blob(svc, b"c", "c")
    other = dict(common, distributed_id="h", base_version_id=None)
    discarded = svc.stage(StageRequest(**other, changes=[("c", c)]))
    assert svc.collect_garbage(grace_seconds=0).removed_blobs == 1  # the deleted base's page
    assert present(svc, c) == [True]
    svc.discard_pending(discarded.id)
    assert pending.id != discarded.id
    assert svc.collect_garbage(grace_seconds=0).removed_blobs == 1
    assert present(svc, c) == [False]


def test_gc_never_removes_old_content_a_commit_in_progress_reuses(svc: LocalService) -> None:
    """A commit that finds an old unused blob present commits it under the maintenance lock;
    gc's sweep waits, then sees the new version and keeps the blob."""
    reused = blob(svc, b"content logged, deleted, then logged again", "f")
    first = commit(svc, reused)
    # `reused` is now garbage, and older than grace 0.
    svc.delete_version(first.id, delete_aliases=True)
    paused, resume = threading.Event(), threading.Event()
    write = svc.catalog.write

    def slow_write(fn: Any) -> Any:
        paused.set()  # the blob check passed; the catalog commit is about to start
        assert resume.wait(10)
        return write(fn)

    svc.catalog.write = slow_write  # type: ignore[method-assign]
    committed: list[Any] = []
    committer = threading.Thread(target=lambda: committed.append(commit(svc, reused, name="ds2")))
    committer.start()
    assert paused.wait(10)
    svc.catalog.write = write  # type: ignore[method-assign]
    reports: list[Any] = []
    collector = threading.Thread(
        target=lambda: reports.append(svc.collect_garbage(grace_seconds=0))
    )
    collector.start()
    time.sleep(0.5)
    assert collector.is_alive(), "gc swept while a commit was between its check and its commit"
    resume.set()
    committer.join(10)
    collector.join(10)
    assert committed and reports
    assert present(svc, reused) == [True]
    # The new version's page equals the deleted one's (same entries): all of it is live again.
    assert (reports[0].removed_blobs, reports[0].live_blobs) == (0, 2)
    assert svc.verify().ok


def test_gc_stops_without_removing_anything_when_a_page_is_unreadable(
    svc: LocalService,
) -> None:
    v0 = commit(svc, blob(svc, b"a", "a"))
    stray = blob(svc, b"stray", "x")
    assert v0.digest is not None
    svc.blobs.delete_many([v0.digest])
    with pytest.raises(CommError, match="nothing was removed"):
        svc.collect_garbage(grace_seconds=0)
    assert present(svc, stray) == [True]
    report = svc.verify()
    assert [(p.kind, p.digest, p.path) for p in report.problems] == [("missing", v0.digest, None)]
    assert "a manifest page of me/p/ds:v0" in report.problems[0].message()


def test_storing_content_again_makes_it_young_again(svc: LocalService) -> None:
    again = blob(svc, b"stored long ago, then again by a commit in progress", "f")
    with sqlite3.connect(svc.blobs.root + "/small.sqlite") as db:  # type: ignore[attr-defined]
        db.execute("UPDATE packed SET stored_at = 0")
    assert svc.collect_garbage(grace_seconds=3600, dry_run=True).removed_blobs == 1
    svc.store_blobs([(again.digest, b"stored long ago, then again by a commit in progress")])
    report = svc.collect_garbage(grace_seconds=3600)
    assert (report.removed_blobs, report.young_blobs) == (0, 1)
    assert present(svc, again) == [True]


def test_a_blob_stored_while_gc_marks_is_young_even_with_grace_0(svc: LocalService) -> None:
    """Ages count from gc's start: what a writer stores while gc computes the live set belongs
    to a commit on its way, even with grace 0 (the chaos harness's upsert racing a gc lost it)."""
    stray = blob(svc, b"stored before gc started", "x")
    during: list[ManifestEntry] = []

    @contextlib.contextmanager
    def progress(description: str, files: int | None, nbytes: int | None) -> Iterator[Any]:
        if description == "marking":  # a writer stores a blob while gc marks
            during.append(blob(svc, b"stored while gc marked", "y"))
        yield type("Bar", (), {"advance": lambda self, f, b: None})()

    report = svc.collect_garbage(grace_seconds=0, progress=progress)
    assert present(svc, stray, *during) == [False, True]
    assert (report.removed_blobs, report.young_blobs) == (1, 1)


def test_verify_racing_gc_reports_no_blob_that_gc_collected_meanwhile(
    svc: LocalService,
) -> None:
    """verify takes no lock (it would hold gc off for as long as it re-hashes the store): a
    blob it listed that a concurrent gc then removes was garbage, not a problem."""
    kept = blob(svc, b"a version's content", "k")
    commit(svc, kept)
    stray = blob(svc, b"garbage, listed by verify then collected", "x")
    collected: list[int] = []

    @contextlib.contextmanager
    def progress(description: str, files: int | None, nbytes: int | None) -> Iterator[Any]:
        if description == "verifying":  # verify has listed the store; a gc runs now
            collected.append(svc.collect_garbage(grace_seconds=0).removed_blobs)
        yield type("Bar", (), {"advance": lambda self, f, b: None})()

    report = svc.verify(progress=progress)
    assert collected == [1] and present(svc, kept, stray) == [True, False]
    assert report.ok, report.problems
