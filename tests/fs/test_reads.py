"""Reading through cairn://: listing, info, cat with ranges, open, get, pinning, verification."""

from __future__ import annotations

import os
import pathlib
import random
import sys
import threading

import fsspec
import pytest

import cairn
from cairn.core import ManifestEntry, digest_bytes
from cairn.errors import DigestMismatchError, PathNotFoundError
from cairn.fs import CairnFileSystem
from cairn.sdk import current_service
from cairn.service import CommitRequest, LocalService
from cairn.storage import LocalBlobStore
from cairn.testing import CountingService
from tests.fs.conftest import log_files

BIG = os.urandom(3_000_000)
FILES = {"a.csv": "x,y\n1,2\n", "d/b.bin": BIG, "d/e/c.txt": "see", "d/e/f.txt": "eff"}


def test_listing_info_find_glob_walk(fs: CairnFileSystem) -> None:
    art = log_files("ds", FILES)
    root = "proj/ds:latest"
    assert fs.ls(root, detail=False) == [f"{root}/a.csv", f"{root}/d"]
    listing = {i["name"]: i for i in fs.ls(f"cairn://{root}/d")}
    assert listing[f"{root}/d/b.bin"]["size"] == len(BIG)
    assert listing[f"{root}/d/b.bin"]["digest"] == digest_bytes(BIG)
    assert listing[f"{root}/d/e"]["type"] == "directory"
    info = fs.info(f"{root}/d/e/c.txt")
    assert (info["type"], info["size"]) == ("file", 3)
    assert fs.info(f"{root}/d")["type"] == "directory"
    top = fs.info(root)
    assert (top["type"], top["version"], top["digest"]) == ("directory", "v0", art.digest)
    assert fs.find(root) == sorted(f"{root}/{p}" for p in FILES)
    assert fs.find(f"{root}/d/e") == [f"{root}/d/e/c.txt", f"{root}/d/e/f.txt"]
    assert fs.glob(f"cairn://{root}/**/*.txt") == [f"{root}/d/e/c.txt", f"{root}/d/e/f.txt"]
    assert f"{root}/d/e" in fs.find(root, withdirs=True)
    walked = {d: sorted(files) for d, _, files in fs.walk(root)}
    assert walked[f"{root}/d/e"] == ["c.txt", "f.txt"]
    assert fs.exists(f"{root}/a.csv") and fs.isdir(f"{root}/d") and fs.isfile(f"{root}/a.csv")
    assert not fs.exists(f"{root}/nope") and not fs.exists("proj/missing:latest/a.csv")
    with pytest.raises(FileNotFoundError):
        fs.info(f"{root}/d/nope.txt")
    with pytest.raises(PathNotFoundError):
        fs.ls("proj/ds:v7")
    assert fs.ukey(f"{root}/a.csv") == digest_bytes(b"x,y\n1,2\n")
    assert fs.checksum(f"{root}/a.csv") != fs.checksum(f"{root}/d/e/c.txt")
    # The default instance (the store the environment selects) sees the same.
    assert fsspec.filesystem("cairn").cat(f"cairn://{root}/d/e/f.txt") == b"eff"


def test_cat_and_open_fetch_only_ranges(fs: CairnFileSystem, counter: CountingService) -> None:
    log_files("ds", FILES)
    path = "proj/ds:v0/d/b.bin"
    assert fs.cat_file(path, start=10, end=20) == BIG[10:20]
    assert fs.cat_file(path, start=-5) == BIG[-5:]
    assert counter.range_bytes == 15 and counter.blob_bytes < 4096  # manifest pages only
    counter.reset()
    with fs.open(path, block_size=64 * 1024) as f:
        f.seek(len(BIG) - 8)
        assert f.read(8) == BIG[-8:]  # a Parquet footer read does not pull the file
        f.seek(1000)
        assert f.read(100) == BIG[1000:1100]
    assert counter.bytes_read <= 2 * (64 * 1024 + 100)
    assert fs.cat(path) == BIG  # whole: verified
    assert fs.cat_file("proj/ds:v0/a.csv", start=2) == b"y\n1,2\n"


def test_partial_reads_never_enter_the_download_cache(
    fs: CairnFileSystem, cairn_env: pathlib.Path, backend: str
) -> None:
    log_files("ds", FILES)
    with fs.open("proj/ds:latest/d/b.bin") as f:
        f.seek(100_000)
        assert f.read(1000) == BIG[100_000:101_000]
    cached = [p for p in (cairn_env / "cache").rglob("*") if p.is_file() and p.suffix != ".sqlite"]
    assert not [p for p in cached if p.stat().st_size == len(BIG)]
    out = cairn_env / "got.bin"
    fs.get("proj/ds:latest/d/b.bin", str(out))  # a whole download is verified and cached
    assert out.read_bytes() == BIG
    if backend == "server":
        assert any(p.stat().st_size == len(BIG) for p in (cairn_env / "cache").rglob("*"))


def test_get_a_directory(fs: CairnFileSystem, tmp_path: pathlib.Path) -> None:
    log_files("ds", FILES)
    fs.get("proj/ds:latest/d", str(tmp_path / "out"), recursive=True)
    assert (tmp_path / "out" / "e" / "c.txt").read_text() == "see"
    assert (tmp_path / "out" / "b.bin").read_bytes() == BIG


def test_an_open_file_keeps_its_version_when_the_alias_moves(fs: CairnFileSystem) -> None:
    log_files("ds", {"f.bin": BIG})
    with fs.open("proj/ds:latest/f.bin", block_size=1 << 16) as f:
        head = f.read(10)
        other = os.urandom(len(BIG))
        log_files("ds", {"f.bin": other})  # latest is now v1
        assert fs.cat("proj/ds:latest/f.bin") == other
        assert head + f.read() == BIG


@pytest.mark.embedded_only
def test_a_whole_read_is_verified(fs: CairnFileSystem) -> None:
    log_files("ds", {"f.bin": BIG})
    svc = current_service()
    assert isinstance(svc, LocalService) and isinstance(svc.blobs, LocalBlobStore)
    blob = svc.blobs.path_of(digest_bytes(BIG))
    os.chmod(blob, 0o644)
    with open(blob, "r+b") as f:
        f.seek(2_000_000)
        f.write(b"\0" * 8 if BIG[2_000_000:2_000_008] != b"\0" * 8 else b"\1" * 8)
    with fs.open("proj/ds:v0/f.bin") as f:
        assert f.read(100) == BIG[:100]  # a part has no digest to check
    with fs.open("proj/ds:v0/f.bin") as f, pytest.raises(DigestMismatchError):
        while f.read(1 << 20):
            pass
    with pytest.raises(DigestMismatchError):
        fs.cat("proj/ds:v0/f.bin")


def test_ls_of_one_directory_reads_few_pages(counter: CountingService) -> None:
    """A version of 20,000 files in 100 directories: ls of one reads a handful of its pages."""
    data = b"same content"
    svc = current_service()
    svc.store_blobs([(digest_bytes(data), data)])
    entries = [
        ManifestEntry(f"dir{d:03d}/f{i:03d}.txt", digest_bytes(data), len(data))
        for d in range(100)
        for i in range(200)
    ]
    request = CommitRequest(
        entity=svc.default_entity,
        project="proj",
        name="many",
        type="dataset",
        changes=[(e.path, e) for e in entries],
    )
    result = svc.commit(request)
    assert result.version is not None and result.version.file_count == 20_000
    fs = CairnFileSystem(service=counter, skip_instance_cache=True)  # type: ignore[arg-type]
    names = fs.ls("proj/many:latest/dir042", detail=False)
    assert names == [f"proj/many:latest/dir042/f{i:03d}.txt" for i in range(200)]
    leaves = 20_000 // 512  # about one leaf page in 512 entries
    assert counter.blob_reads <= 6, counter.blob_reads  # root, an index level or two, 1-2 leaves
    assert counter.blob_reads < leaves / 5
    counter.reset()
    assert len(fs.ls("proj/many:latest", detail=False)) == 100
    assert cairn.Api().artifact("proj/many:latest").file_count == 20_000


@pytest.mark.slow  # long: dealt out first (tests/conftest.py)
def test_one_handle_read_by_many_threads_gives_each_its_own_bytes(fs: CairnFileSystem) -> None:
    """DuckDB reads one handle from all of its threads, each a seek then a read: each thread's
    read returns the bytes at its own seek, whatever the others do meanwhile. First in lockstep
    (every thread seeks before any reads: one position shared by the threads fails every round),
    then free-running with threads switching between any two steps (as under load)."""
    data = os.urandom(3 << 20)  # ranged reads through the read-ahead cache, not one whole read
    log_files("shared", {"blob.bin": data})
    wrong: list[tuple[int, int]] = []
    threads_n, rounds = 8, 12
    step = threading.Barrier(threads_n)
    phase = threading.Barrier(threads_n + 1)  # the test's thread switches the interval between
    with fs.open("proj/shared:latest/blob.bin", block_size=64 << 10) as f:

        def read_at(rnd: random.Random, lockstep: bool) -> None:
            at, n = rnd.randrange(len(data)), rnd.randrange(1, 200_000)
            f.seek(at)
            if lockstep:
                step.wait()
            if f.read(n) != data[at : at + n]:
                wrong.append((at, n))
            if lockstep:
                step.wait()

        def reader(seed: int) -> None:
            rnd = random.Random(seed)
            for _ in range(rounds):
                read_at(rnd, True)
            phase.wait()
            phase.wait()
            for _ in range(rounds):
                read_at(rnd, False)

        threads = [threading.Thread(target=reader, args=(i,)) for i in range(threads_n)]
        for t in threads:
            t.start()
        phase.wait()
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        try:
            phase.wait()
            for t in threads:
                t.join()
        finally:
            sys.setswitchinterval(interval)
    assert wrong == []
