"""``cairn cache cleanup``, ``cairn gc`` and ``cairn verify``: through the console script, with
follow-up checks in process."""

from __future__ import annotations

import os
import pathlib
import sqlite3
import subprocess
import sys
import textwrap
import time

from tests.cli.conftest import cairn_cli, ok, run, run_ok
from tests.conftest import write


def place_cache_blob(cache: pathlib.Path, hexdigest: str, size: int, age: float) -> pathlib.Path:
    """A blob in the download cache's layout, last used ``age`` seconds ago."""
    path = cache / "blobs" / "sha256" / hexdigest[:2] / hexdigest[2:]
    write(path, b"x" * size)
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def test_cache_cleanup_removes_least_recently_used_first(cairn_env: pathlib.Path) -> None:
    cache = cairn_env / "cache"
    blobs = [
        place_cache_blob(cache, f"{i:02x}" + "0" * 62, 1000, age)
        for i, age in enumerate([50, 10, 40, 20, 30])  # sizes 1000 each, 5000 in all
    ]
    partial = write(cache / "blobs" / "tmp" / "x.partial", b"p" * 7)
    report = ok("cache", "cleanup", "2.5KB", "--json").json()
    assert report["removed_files"] == 3 and report["removed_bytes"] == 3000
    assert report["remaining_bytes"] == 2000 and report["temp_files_removed"] == 0
    # The three used longest ago (ages 50, 40, 30) went; the two most recent stayed.
    assert [b.exists() for b in blobs] == [False, True, False, True, False]
    assert os.path.exists(partial)
    human = run_ok("cache", "cleanup", "1000B", "--remove-temp").out
    assert "removed 1 files (1.0 kB)" in human and "removed 1 partial files (7 B)" in human
    assert [b.exists() for b in blobs] == [False, True, False, False, False]
    assert not os.path.exists(partial)
    assert run_ok("cache", "cleanup", "0").out.startswith("removed 1 files")
    bad = run("cache", "cleanup", "lots")
    assert bad.code == 2 and "500MB" in bad.err
    # W&B's spelling works too.
    assert run("artifact", "cache", "cleanup", "1GB").code == 0


def _blob_files(store: pathlib.Path) -> set[str]:
    return {p.name for p in (store / "blobs" / "sha256").rglob("*") if p.is_file()}


def _small_blobs(store: pathlib.Path) -> int:
    with sqlite3.connect(store / "blobs" / "small.sqlite") as db:
        return int(db.execute("SELECT count(*) FROM packed").fetchone()[0])


def test_gc_removes_only_what_no_version_uses(
    tmp_path: pathlib.Path, cairn_env: pathlib.Path
) -> None:
    store = cairn_env / "store"
    # Blob files (1 MiB or more; smaller ones are packed).
    shared, only_v0 = os.urandom(1_200_000), os.urandom(1_300_000)
    data = tmp_path / "d"
    write(data / "shared.bin", shared)
    write(data / "old.bin", only_v0)
    write(data / "small.txt", "v0 only")
    run_ok("artifact", "put", str(data), "-n", "p/ds")
    os.remove(data / "old.bin")
    write(data / "small.txt", "v1 only")
    run_ok("artifact", "put", str(data), "-n", "p/ds")
    large_before, small_before = _blob_files(store), _small_blobs(store)

    # Nothing is garbage while every version exists.
    assert run_ok("gc", "--grace", "0", "--json").json()["removed_blobs"] == 0
    run_ok("artifact", "rm", "p/ds:v0")
    dry = run_ok("gc", "--dry-run", "--grace", "0", "--json").json()
    # v0's large file, its small file and its manifest page.
    assert dry["dry_run"] and dry["removed_blobs"] == 3
    assert dry["removed_bytes"] > 1_300_000
    assert _blob_files(store) == large_before and _small_blobs(store) == small_before
    young = run_ok("gc").out  # default grace 1h: just-deleted content is young
    assert "removed 0 blobs" in young and "spared 3 unused blobs" in young
    freed = ok("gc", "--grace", "0").out
    assert freed.startswith("removed 3 blobs (1.3 MB)") and "blobs are in use" in freed
    assert len(_blob_files(store)) == len(large_before) - 1
    assert _small_blobs(store) == small_before - 2
    assert run_ok("verify").out.strip().endswith(": ok")
    root = run_ok("artifact", "get", "p/ds", "--root", str(tmp_path / "out")).out.strip()
    assert pathlib.Path(root, "shared.bin").read_bytes() == shared
    assert run("gc", "--grace", "soon").code == 2


LOGGER = textwrap.dedent(
    """
    import os, sys, time
    import cairn
    work, count = sys.argv[1], int(sys.argv[2])
    for i in range(count):
        if i == count // 2:  # half logged: wait for two gc runs to have started meanwhile
            deadline = time.monotonic() + 120
            while not os.path.exists(os.path.join(work, "gc-2")) and time.monotonic() < deadline:
                time.sleep(0.01)
        art = cairn.Artifact("live", "dataset")
        for j in range(3):
            path = os.path.join(work, f"f{i}-{j}.bin")
            with open(path, "wb") as f:
                f.write(os.urandom(150_000 if j == 0 else 2_000))
            art.add_file(path, name=f"f{j}.bin")
        with cairn.init(project="p") as run:
            run.log_artifact(art)
    print("logged", count)
    """
)


def test_gc_during_concurrent_logging_never_breaks_a_version(
    tmp_path: pathlib.Path, cairn_env: pathlib.Path
) -> None:
    # Garbage to collect: versions logged and deleted before the logger starts.
    data = tmp_path / "trash"
    for i in range(3):
        write(data / "t.bin", os.urandom(150_000))
        write(data / "s.txt", f"small {i}")
        run_ok("artifact", "put", str(data), "-n", "p/trash")
    for i in range(3):
        run_ok("artifact", "rm", f"p/trash:v{i}", "--delete-aliases")
    time.sleep(1.1)  # older than gc's grace below
    work = tmp_path / "work-logger"
    work.mkdir()
    count = 25
    logger = subprocess.Popen(
        [sys.executable, "-c", LOGGER, str(work), str(count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    freed = 0
    runs = 0
    while logger.poll() is None or runs == 0:
        (work / f"gc-{runs + 1}").touch()  # the logger's second half waits for the second
        report = ok("gc", "--grace", "1s", "--json").json()
        freed += report["removed_blobs"]
        runs += 1
    out, err = logger.communicate(timeout=300)
    assert logger.returncode == 0, err
    assert f"logged {count}" in out
    assert freed >= 9  # the three deleted versions: a large blob, a small one and a page each
    assert runs >= 2, "gc should have run while the logger was logging"
    report = run_ok("gc", "--grace", "0", "--json").json()
    assert report["removed_blobs"] == 0  # nothing live was left behind as garbage either
    assert run_ok("verify").out.strip().endswith(": ok")
    versions = run_ok("artifact", "versions", "p/live", "--json").json()
    assert len(versions) == count
    root = run_ok("artifact", "get", "p/live:v0", "--root", str(tmp_path / "v0")).out.strip()
    assert sorted(os.listdir(root)) == ["f0.bin", "f1.bin", "f2.bin"]


def test_verify_names_damaged_and_missing_blobs(
    tmp_path: pathlib.Path, cairn_env: pathlib.Path
) -> None:
    store = cairn_env / "store"
    data = tmp_path / "d"
    big, other = os.urandom(1_200_000), os.urandom(1_250_000)  # blob files (1 MiB or more)
    write(data / "big.bin", big)
    write(data / "other.bin", other)
    write(data / "small.txt", "small")
    put = run_ok("artifact", "put", str(data), "-n", "p/ds", "--json").json()
    run_ok("artifact", "put", str(data / "small.txt"), "-n", "p/solo")
    assert run_ok("verify").out.strip() == "checked 2 versions, 5 blobs (2.5 MB): ok"
    files = {e["path"]: e["digest"] for e in run_ok("artifact", "files", "p/ds", "--json").json()}

    hexd = files["big.bin"][len("sha256:") :]
    blob = store / "blobs" / "sha256" / hexd[:2] / hexd[2:]
    blob.chmod(0o644)
    blob.write_bytes(bytes([big[0] ^ 0xFF]) + big[1:])  # one byte flipped on disk
    hexo = files["other.bin"][len("sha256:") :]
    (store / "blobs" / "sha256" / hexo[:2] / hexo[2:]).unlink()
    with sqlite3.connect(store / "blobs" / "small.sqlite") as db:
        raw = bytes.fromhex(files["small.txt"][len("sha256:") :])
        pack, offset = db.execute(
            "SELECT pack, offset FROM packed WHERE digest = ?", (raw,)
        ).fetchone()
    with open(store / "blobs" / "packs" / f"{pack:08d}.pack", "r+b") as f:
        f.seek(offset)
        f.write(b"SMALL")  # the first bytes of the small blob overwritten in its pack

    bad = cairn_cli("verify")
    assert bad.code == 1, bad.err
    lines = bad.out.splitlines()
    assert f"damaged: blob {files['big.bin']} (file 'big.bin' of {put['entity']}/p/ds:v0)" in lines
    assert (
        f"missing: blob {files['other.bin']} (file 'other.bin' of {put['entity']}/p/ds:v0)" in lines
    )
    # The damaged small blob is named for both versions that use it.
    assert sum(files["small.txt"] in line and "damaged" in line for line in lines) == 2
    assert lines[-1].endswith("4 problems")
    scoped = run("verify", "p/solo", "--json")
    assert scoped.code == 1
    report = scoped.json()
    assert report["versions"] == 1 and not report["ok"]
    # The first verify removed the damaged copy (so the next log of it repairs it): now missing.
    assert [(p["kind"], p["path"]) for p in report["problems"]] == [("missing", "small.txt")]
    assert run("verify", "p/solo:v0").code == 1
    assert run("verify", "nothing-here").code == 1


def _to_first_format(store: pathlib.Path) -> int:
    """Rewrite a store's small blobs as cairn of store format 1 kept them (bytes in the ``blob``
    table of small.sqlite, no packs) and mark the store format 1. Returns how many."""
    root = store / "blobs"
    db = sqlite3.connect(root / "small.sqlite", isolation_level=None)
    rows = db.execute("SELECT digest, pack, offset, size, stored_at FROM packed").fetchall()
    legacy = []
    for raw, pack, offset, size, stored_at in rows:
        with open(root / "packs" / f"{pack:08d}.pack", "rb") as f:
            f.seek(offset)
            legacy.append((raw, size, stored_at, f.read(size)))
    db.execute("BEGIN")
    db.execute("DROP TABLE packed")
    db.execute("DROP TABLE pack")
    db.execute(
        "CREATE TABLE blob (digest BLOB PRIMARY KEY,"
        " size INTEGER NOT NULL, stored_at REAL NOT NULL, data BLOB NOT NULL)"
    )
    db.executemany("INSERT INTO blob VALUES (?, ?, ?, ?)", legacy)
    db.execute("COMMIT")
    db.close()
    for pack_file in (root / "packs").iterdir():
        pack_file.unlink()
    (root / "packs").rmdir()
    (store / "cairn-store.json").write_text('{"format": 1}')
    return len(legacy)


def test_a_store_of_format_1_is_upgraded_when_opened(
    tmp_path: pathlib.Path, cairn_env: pathlib.Path
) -> None:
    store = cairn_env / "store"
    data = tmp_path / "d"
    for i in range(30):
        write(data / f"f{i:02}.txt", f"small file {i}\n" * (i + 1))
    write(data / "big.bin", os.urandom(1_300_000))  # a blob file (1 MiB or more)
    run_ok("artifact", "put", str(data), "-n", "p/ds")
    checked = run_ok("verify").out
    assert _to_first_format(store) == 31  # the 30 small files and the manifest page
    # A new cairn process opens it: the small blobs move into packs, the store is marked
    # format 2.
    assert ok("verify").out == checked and checked.strip().endswith("ok")
    assert '"format": 2' in (store / "cairn-store.json").read_text()
    assert [p.name for p in (store / "blobs" / "packs").iterdir()] == ["00000001.pack"]
    assert _small_blobs(store) == 31
    out = tmp_path / "out"
    ok("artifact", "get", "p/ds:latest", "--root", str(out))
    assert (out / "f07.txt").read_text() == "small file 7\n" * 8
    # A store of a later format is refused with what to do.
    (store / "cairn-store.json").write_text('{"format": 3}')
    bad = cairn_cli("artifact", "ls", "p")
    assert bad.code != 0 and "upgrade cairn" in bad.err
