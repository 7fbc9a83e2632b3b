"""Distributed runs: many runs build one version together (upsert_artifact / finish_artifact)."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Sequence

import pytest

import cairn
from cairn.catalog import Catalog
from cairn.core import ManifestEntry
from cairn.errors import ArtifactNotFoundError, CommError
from cairn.sdk._staging import STORE_AGAIN_ATTEMPTS, Stager
from cairn.service import CommitRequest, CommitResult, FinishRequest, LocalService
from cairn.storage import LocalBlobStore
from tests._forked import run_workers
from tests.conftest import write


def upsert(
    files: dict[str, str], dist: str | None = "d1", group: str | None = None, name: str = "shared"
) -> cairn.Artifact:
    with cairn.init(group=group) as run:
        art = cairn.Artifact(name, "dataset")
        for path, content in files.items():
            art.add_file(write(f"src-{run.id}/{path}", content), name=path)
        run.upsert_artifact(art, distributed_id=dist)
    return art


def finish(
    files: dict[str, str] | None = None,
    dist: str | None = "d1",
    group: str | None = None,
    **kw: object,
) -> cairn.Artifact:
    with cairn.init(group=group) as run:
        art = cairn.Artifact("shared", "dataset")
        for path, content in (files or {}).items():
            art.add_file(write(f"src-{run.id}/{path}", content), name=path)
        run.finish_artifact(art, distributed_id=dist, **kw)  # type: ignore[arg-type]
    return art


def test_group_is_the_default_distributed_id(monkeypatch: pytest.MonkeyPatch) -> None:
    upsert({"a": "1"}, dist=None, group="grp")
    monkeypatch.setenv("CAIRN_RUN_GROUP", "grp")
    art = finish({"b": "2"}, dist=None)
    assert art.version == "v0" and sorted(art.manifest.entries) == ["a", "b"]
    assert art.distributed_id == "grp"


def test_without_group_or_id_a_type_error_names_both() -> None:
    with cairn.init() as run:
        art = cairn.Artifact("x", "dataset")
        with pytest.raises(TypeError, match=r"distributed_id.*group"):
            run.upsert_artifact(art)
        with pytest.raises(TypeError, match="distributed_id"):
            run.finish_artifact(art)


def test_later_upsert_wins_and_writers_are_recorded() -> None:
    with cairn.init() as run:
        art = cairn.Artifact("shared", "dataset")
        art.add_file(write("early/a", "a"), name="a")
        run.upsert_artifact(art, distributed_id="d1", aliases=["from-upsert"])
    upsert({"same.txt": "first", "a": "a"})
    upsert({"same.txt": "second", "b": "b"})
    with cairn.init() as run:
        art = cairn.Artifact("shared", "dataset")
        art.add_file(write("c", "c"))
        run.finish_artifact(art, distributed_id="d1", aliases=["release"])
        finisher = run.id
    assert art.version == "v0" and art.aliases == ["latest", "from-upsert", "release"]
    assert art.digest.startswith("sha256:") and art.wait() is art
    assert sorted(art.manifest.entries) == ["a", "b", "c", "same.txt"]
    root = art.download()
    with open(os.path.join(root, "same.txt")) as f:
        assert f.read() == "second"
    assert len(art.written_by()) == 4
    logger = art.logged_by()
    assert logger is not None and logger.id == finisher


def test_pending_versions_are_invisible_until_finished() -> None:
    upsert({"a": "1"})
    api = cairn.Api()
    with pytest.raises(ArtifactNotFoundError):
        api.artifact("shared:latest")
    with pytest.raises(ArtifactNotFoundError):
        api.artifact("shared:v0")
    assert api.artifacts("dataset", "shared") == []
    pending = api.artifacts("dataset", "shared", include_pending=True)
    assert [a.state for a in pending] == ["PENDING"]
    finish()
    assert [a.version for a in api.artifacts("dataset", "shared")] == ["v0"]


def test_upsert_after_finish_starts_a_new_version() -> None:
    upsert({"a": "1"})
    v0 = finish()
    upsert({"b": "2"})
    assert cairn.Api().artifact("shared:v0").file_count == 1  # the committed one never changes
    v1 = finish()
    assert v1.version == "v1" and sorted(v1.manifest.entries) == ["b"]
    assert v0.id != v1.id


def test_discard_pending_versions() -> None:
    upsert({"a": "1"}, dist="abandoned")
    api = cairn.Api()
    api.discard_pending("shared", "abandoned")
    assert api.artifacts("dataset", "shared", include_pending=True) == []
    with pytest.raises(ArtifactNotFoundError):
        api.discard_pending("shared", "abandoned")


@pytest.mark.embedded_only  # on a server, cleaning up every project's pending versions is for admins
def test_cleanup_of_old_pending_versions() -> None:
    upsert({"a": "1"}, dist="old")
    api = cairn.Api()
    assert api.cleanup_pending(older_than_seconds=3600) == 0
    time.sleep(0.05)
    assert api.cleanup_pending(older_than_seconds=0.01) == 1
    assert api.artifacts("dataset", "shared", include_pending=True) == []


def test_finishing_twice_gives_one_version() -> None:
    upsert({"a": "1"})
    first = finish()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        second = finish()
    assert first.id == second.id
    assert [a.version for a in cairn.Api().artifacts("dataset", "shared")] == ["v0"]


def test_a_distributed_draft_adds_and_removes() -> None:
    base = cairn.Artifact("shared", "dataset")
    for p in ("keep", "drop/1", "drop/2"):
        base.add_file(write(f"b/{p}", p), name=p)
    with cairn.init() as run:
        run.log_artifact(base)
    for piece in ("x", "y"):
        with cairn.init(group="g") as run:
            draft = run.use_artifact("shared:latest").new_draft()
            draft.add_file(write(f"new/{piece}", piece), name=piece)
            if piece == "x":
                draft.remove("drop/")
            run.upsert_artifact(draft)
    with cairn.init(group="g") as run:
        draft = run.use_artifact("shared:v0").new_draft()
        run.finish_artifact(draft)
    assert draft.version == "v1" and sorted(draft.manifest.entries) == ["keep", "x", "y"]


WORKER = textwrap.dedent(
    """
    import sys, cairn
    n, count = int(sys.argv[1]), int(sys.argv[2])
    with cairn.init(group="stress") as run:
        art = cairn.Artifact("stress", "dataset")
        for i in range(count):
            with art.new_file(f"w{n:02}/f{i:04}.txt", mode="w") as f:
                f.write(f"worker {n} file {i}")
        print("staging", flush=True)
        run.upsert_artifact(art)
    print("done", flush=True)
    """
)


@pytest.mark.slow  # long: dealt out first (tests/conftest.py)
@pytest.mark.process_server
def test_sixteen_processes_upsert_at_once_and_lose_nothing() -> None:
    workers, per_worker = 16, 40
    # Forked from one process that imported cairn once (tests/_forked.py): sixteen processes
    # starting at the same moment, without sixteen times Python's start and imports.
    for w in run_workers(WORKER, [[str(n), str(per_worker)] for n in range(workers)]):
        assert w.returncode == 0, w.stderr.decode()
    # Two finishers at the same moment: one committed version, never a torn one.
    finisher = textwrap.dedent(
        """
        import cairn, warnings
        warnings.simplefilter("ignore")
        with cairn.init(group="stress") as run:
            art = run.finish_artifact(cairn.Artifact("stress", "dataset"))
            print(art.id, art.version)
        """
    )
    outs = []
    for w in run_workers(finisher, [[], []], timeout=120):
        assert w.returncode == 0, w.stderr.decode()
        outs.append(w.stdout.decode().split())
    assert outs[0] == outs[1]
    versions = cairn.Api().artifacts("dataset", "stress", include_pending=True)
    assert [v.version for v in versions] == ["v0"]
    assert versions[0].file_count == workers * per_worker
    assert len(versions[0].written_by()) == workers + 1


@pytest.mark.slow  # long: dealt out first (tests/conftest.py)
@pytest.mark.embedded_only  # reads the staged rows in the catalog
def test_a_worker_killed_mid_upsert_leaves_nothing_half_staged() -> None:
    per_worker = 3000
    for delay in (0.3, 0.6, 0.9, 1.2):
        proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, "1", str(per_worker)], stdout=subprocess.PIPE
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"staging"
        time.sleep(delay * 0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        try:
            pending = cairn.Api().artifacts("dataset", "stress", include_pending=True)
        except ArtifactNotFoundError:
            pending = []  # killed before its first upsert reached the catalog
        if pending:
            from cairn.sdk import current_service

            vid = pending[0].id
            svc = current_service()
            staged = svc.catalog.read(lambda tx, vid=vid: tx.pending.staged_count(vid))  # type: ignore[attr-defined, misc]
            assert staged in (0, per_worker), f"half-staged: {staged}"
    # Running it again succeeds, and the version holds each file once.
    again = subprocess.run(
        [sys.executable, "-c", WORKER, "1", str(per_worker)], capture_output=True
    )
    assert again.returncode == 0, again.stderr.decode()
    with cairn.init(group="stress") as run:
        art = run.finish_artifact(cairn.Artifact("stress", "dataset"))
    assert art.file_count == per_worker


class _LosingStore(LocalBlobStore):
    """A blob store that loses every write (a disk that drops data, a gc that sweeps it): the
    store keeps reporting the blobs missing, however often they are sent again."""

    def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        pass


@pytest.mark.embedded_only
@pytest.mark.parametrize("call", ["commit", "finish"])
def test_blobs_missing_twice_are_an_error_not_a_version(tmp_path: pathlib.Path, call: str) -> None:
    """Commit and finish make sure of their blobs the same way (``Stager.commit_with_blobs``):
    restored up to STORE_AGAIN_ATTEMPTS times, and missing again, it is a CommError (a finish
    used to fail an assert)."""
    service = LocalService(
        Catalog("sqlite:///" + str(tmp_path / "catalog.sqlite")),
        _LosingStore(str(tmp_path / "blobs")),
        location=str(tmp_path),
    )
    stager = Stager(service, None)
    path = write(tmp_path / "src" / "a.txt", "content that is never kept")
    (staged,) = stager.stage([(os.path.dirname(path), "a.txt", os.stat(path))], use_cache=False)
    entry = ManifestEntry("a.txt", staged.digest, staged.size)
    fields = {"entity": "me", "project": "p", "name": "ds", "type": "dataset"}
    calls = 0

    def commit() -> CommitResult:
        nonlocal calls
        calls += 1
        if call == "commit":
            return service.commit(CommitRequest(**fields, changes=[("a.txt", entry)]))  # type: ignore[arg-type]
        return service.finish(
            FinishRequest(**fields, distributed_id="d", changes=[("a.txt", entry)])  # type: ignore[arg-type]
        )

    with pytest.raises(
        CommError, match=f"lost 1 blobs .* stored again {STORE_AGAIN_ATTEMPTS} times"
    ):
        stager.commit_with_blobs(commit)
    assert calls == 1 + STORE_AGAIN_ATTEMPTS
    assert service.list_collections("me", "p") == []  # nothing half made
    service.close()
