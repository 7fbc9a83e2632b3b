"""Writing through cairn://: a version per write, or one per transaction; conflicts; lineage."""

from __future__ import annotations

import pathlib

import pytest

import cairn
from cairn.errors import ConflictError, PathNotFoundError, ValidationError
from cairn.fs import CairnFileSystem
from cairn.service import CommitRequest, CommitResult
from cairn.testing import CountingService
from tests.fs.conftest import log_files


def versions(name: str) -> list[str]:
    return sorted(a.version for a in cairn.Api().artifacts("dataset", f"proj/{name}"))


def test_each_write_outside_a_transaction_logs_a_version(fs: CairnFileSystem) -> None:
    with fs.open("proj/new:latest/a.txt", "wb") as f:
        f.write(b"alpha")
    assert versions("new") == ["v0"]
    fs.pipe_file("proj/new:latest/b.txt", b"beta")
    assert versions("new") == ["v0", "v1"]
    assert fs.cat("proj/new:latest/a.txt") == b"alpha"  # v1 is v0 plus b.txt
    fs.rm("proj/new:latest/a.txt")
    assert fs.ls("proj/new:v2", detail=False) == ["proj/new:v2/b.txt"]
    assert fs.ls("proj/new:v0", detail=False) == ["proj/new:v0/a.txt"]  # versions never change
    run = cairn.Api().artifact("proj/new:v2").logged_by()
    assert run is not None and run.job_type == "fsspec"
    assert [a.version for a in run.used_artifacts()] == ["v1"]  # lineage: built on v1


def test_a_transaction_logs_exactly_one_version(
    fs: CairnFileSystem, tmp_path: pathlib.Path
) -> None:
    log_files("ds", {"keep.txt": "k", "old/x.txt": "x", "old/y.txt": "y"})
    local = tmp_path / "local.bin"
    local.write_bytes(b"from disk" * 50_000)
    with fs.transaction:
        with fs.open("proj/ds:latest/new/a.txt", "wb") as f:
            f.write(b"written")
        fs.put(str(local), "proj/ds:latest/new/local.bin")
        fs.rm("proj/ds:latest/old", recursive=True)
        fs.cp("proj/ds:latest/keep.txt", "proj/ds:latest/copy.txt")
        assert versions("ds") == ["v0"]  # nothing is logged before the end
    assert versions("ds") == ["v0", "v1"]
    assert fs.find("proj/ds:v1") == [
        "proj/ds:v1/copy.txt",
        "proj/ds:v1/keep.txt",
        "proj/ds:v1/new/a.txt",
        "proj/ds:v1/new/local.bin",
    ]
    assert fs.cat("proj/ds:v1/new/local.bin") == local.read_bytes()
    assert fs.cat("proj/ds:v1/copy.txt") == b"k"
    run = cairn.Api().artifact("proj/ds:v1").logged_by()
    assert run is not None and run.job_type == "fsspec"


def test_a_failed_transaction_logs_nothing(fs: CairnFileSystem) -> None:
    log_files("ds", {"a.txt": "a"})
    with pytest.raises(RuntimeError, match="boom"), fs.transaction:
        fs.pipe_file("proj/ds:latest/b.txt", b"b")
        fs.rm("proj/ds:latest/a.txt")
        raise RuntimeError("boom")
    assert versions("ds") == ["v0"]
    assert fs.ls("proj/ds:latest", detail=False) == ["proj/ds:latest/a.txt"]
    fs.pipe_file("proj/ds:latest/c.txt", b"c")  # the filesystem is usable again, untransacted
    assert versions("ds") == ["v0", "v1"]


def test_the_commit_is_refused_if_the_alias_moved(fs: CairnFileSystem) -> None:
    log_files("ds", {"a.txt": "a"})
    with pytest.raises(ConflictError, match="moved"), fs.transaction:
        fs.pipe_file("proj/ds:latest/mine.txt", b"mine")
        log_files("ds", {"theirs.txt": "theirs"})  # another writer: latest is now v1
    assert versions("ds") == ["v0", "v1"]
    assert fs.ls("proj/ds:latest", detail=False) == ["proj/ds:latest/theirs.txt"]
    # A named alias moves with the writes made through it, and is checked the same way.
    art = cairn.Api().artifact("proj/ds:v0")
    art.aliases.append("prod")
    art.save()
    fs.pipe_file("proj/ds:prod/b.txt", b"b")
    assert cairn.Api().artifact("proj/ds:prod").version == "v2"
    assert fs.ls("proj/ds:prod", detail=False) == ["proj/ds:prod/a.txt", "proj/ds:prod/b.txt"]


class RacingService(CountingService):
    """Another writer logs a version of ``ds`` just as the first commit request reaches the store
    (after the client's own check passed): only the store's check can catch it."""

    raced = False

    def commit(self, request: CommitRequest) -> CommitResult:
        if not self.raced:
            self.raced = True
            theirs = log_files("ds", {"theirs.txt": "theirs"})  # gets latest
            theirs.aliases.append("prod")
            theirs.save()
        result: CommitResult = self._inner.commit(request)
        return result


@pytest.mark.parametrize("alias", ["latest", "prod"])
def test_a_writer_in_the_same_instant_is_caught_by_the_store(
    counter: CountingService, alias: str
) -> None:
    art = log_files("ds", {"a.txt": "a"})
    art.aliases.append("prod")
    art.save()
    fs = CairnFileSystem(service=RacingService(counter), skip_instance_cache=True)  # type: ignore[arg-type]
    with pytest.raises(ConflictError, match="nothing was committed"):
        fs.pipe_file(f"proj/ds:{alias}/mine.txt", b"mine")
    assert versions("ds") == ["v0", "v1"]  # the other writer's version only
    assert fs.ls(f"proj/ds:{alias}", detail=False) == [f"proj/ds:{alias}/theirs.txt"]
    # Without a race the same write goes through.
    fs.pipe_file(f"proj/ds:{alias}/mine.txt", b"mine")
    assert versions("ds") == ["v0", "v1", "v2"]


def test_writing_to_an_old_version_builds_on_it(fs: CairnFileSystem) -> None:
    log_files("ds", {"a.txt": "a"})
    log_files("ds", {"b.txt": "b"})
    fs.pipe_file("proj/ds:v0/c.txt", b"c")  # a draft of v0, whatever came after it
    assert fs.ls("proj/ds:v2", detail=False) == ["proj/ds:v2/a.txt", "proj/ds:v2/c.txt"]
    with pytest.raises(PathNotFoundError):
        fs.pipe_file("proj/ds:v9/c.txt", b"c")
    with pytest.raises(PathNotFoundError, match="no version 'prod'"):
        fs.pipe_file("proj/ds:prod/c.txt", b"c")  # a version of c.txt alone would drop a.txt
    fs.pipe_file("proj/fresh:prod/c.txt", b"c")  # a new artifact may start at any alias
    assert cairn.Api().artifact("proj/fresh:prod").version == "v0"


def test_pandas_writes_parquet_as_a_version(fs: CairnFileSystem) -> None:
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"x": range(1000), "y": [f"row {i}" for i in range(1000)]})
    df.to_parquet("cairn://proj/tables:latest/t.parquet")
    df.to_csv("cairn://proj/tables:latest/t.csv", index=False)
    assert versions("tables") == ["v0", "v1"]
    assert pd.read_parquet("cairn://proj/tables:latest/t.parquet").equals(df)
    assert pd.read_csv("cairn://proj/tables:v1/t.csv").equals(df)


def test_bad_writes_are_refused_before_anything_is_logged(fs: CairnFileSystem) -> None:
    log_files("ds", {"a.txt": "a"})
    with pytest.raises(ValidationError):
        fs.open("proj/ds:latest/../escape.txt", "wb")
    with pytest.raises(ValidationError):
        fs.open("proj/ds:latest/a.txt", "ab")
    with pytest.raises(ValidationError):
        fs.open("proj/ds:latest", "wb")
    with pytest.raises(ValidationError):
        fs.rm("proj/ds:latest", recursive=True)
    with pytest.raises(FileNotFoundError):
        fs.rm("proj/ds:latest/nope.txt")
    assert versions("ds") == ["v0"]


def test_one_call_that_writes_many_files_logs_one_version(
    fs: CairnFileSystem, tmp_path: pathlib.Path
) -> None:
    for name in ("a.txt", "sub/b.txt", "sub/c.txt"):
        (tmp_path / "up" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "up" / name).write_text(name)
    fs.put(str(tmp_path / "up") + "/", "proj/up:latest/data", recursive=True)
    assert versions("up") == ["v0"]
    assert fs.find("proj/up:v0") == [
        "proj/up:v0/data/a.txt",
        "proj/up:v0/data/sub/b.txt",
        "proj/up:v0/data/sub/c.txt",
    ]
    fs.mv("proj/up:latest/data/sub", "proj/up:latest/moved", recursive=True)
    assert versions("up") == ["v0", "v1"]
    assert fs.find("proj/up:v1") == [
        "proj/up:v1/data/a.txt",
        "proj/up:v1/moved/b.txt",
        "proj/up:v1/moved/c.txt",
    ]
    assert fs.cat("proj/up:v1/moved/c.txt") == b"sub/c.txt"
