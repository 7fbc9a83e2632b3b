"""Small blobs in pack files: their size on disk, gc giving bytes back, killed writers, and the
move of first-format stores (bytes in small.sqlite) into packs."""

from __future__ import annotations

import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading

import pytest

from cairn.core import digest_bytes
from cairn.storage import LocalBlobStore
from cairn.storage._local_packs import OWN_PACK
from tests._infra import (
    raised_within,
    turn_held_by_a_stopped_process,
    waits_its_turn,
    writer_turn_held,
)


def _disk_usage(root: str) -> int:
    """What ``du`` counts: the blocks every file under ``root`` occupies."""
    total = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            total += os.stat(os.path.join(dirpath, name)).st_blocks * 512
    return total


def _blobs(n: int, size: int, seed: bytes = b"") -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        data = (seed + i.to_bytes(4, "big")) * (size // (len(seed) + 4))
        data = os.urandom(8) + data[: size - 8]
        out.append((digest_bytes(data), data))
    return out


def test_small_blobs_take_their_size_on_disk(tmp_path: pathlib.Path) -> None:
    store = LocalBlobStore(str(tmp_path / "blobs"))
    items = _blobs(2000, 4096)
    for start in range(0, len(items), 500):
        store.put_many(items[start : start + 500])
    store.close()
    used = _disk_usage(store.root)
    data = sum(len(b) for _, b in items)
    assert used <= 1.1 * data, (used, data)
    assert os.listdir(os.path.join(store.root, "sha256")) == []  # no file per small blob
    assert list(os.listdir(store.root + "/packs")) == ["00000001.pack"]
    assert store.get(items[1234][0]) == items[1234][1]
    assert store.get_range(items[7][0], 4000, 500) == items[7][1][4000:]


def test_gc_gives_the_bytes_of_deleted_small_blobs_back(tmp_path: pathlib.Path) -> None:
    store = LocalBlobStore(str(tmp_path / "blobs"))
    old, kept = _blobs(300, 4096, b"old"), _blobs(100, 4096, b"kept")
    store.put_many(old + kept)
    before = _disk_usage(store.root + "/packs")
    assert store.delete_many([d for d, _ in old]) == 300
    after = _disk_usage(store.root + "/packs")
    # The pack was three quarters dead: rewritten with the live quarter, the old one removed.
    assert after <= before * 0.3, (before, after)
    assert os.listdir(store.root + "/packs") == ["00000002.pack"]
    assert store.has_many([d for d, _ in old + kept]) == {d for d, _ in kept}
    for d, b in kept:
        assert store.get(d) == b
    assert store.get_range(kept[50][0], 10, 20) == kept[50][1][10:30]
    assert {i.digest for i in store.list()} == {d for d, _ in kept}
    # Deleting the rest leaves no pack at all; new blobs go to a new one.
    store.delete_many([d for d, _ in kept])
    assert os.listdir(store.root + "/packs") == []
    store.put_many(old[:1])
    assert store.get(old[0][0]) == old[0][1]
    assert os.listdir(store.root + "/packs") == ["00000003.pack"]


def test_a_pack_less_than_half_dead_stays(tmp_path: pathlib.Path) -> None:
    store = LocalBlobStore(str(tmp_path / "blobs"))
    items = _blobs(10, 1000)
    store.put_many(items)
    store.delete_many([items[0][0]])
    assert os.listdir(store.root + "/packs") == ["00000001.pack"]
    assert store.compact() == 0
    assert [store.get(d) == b for d, b in items[1:]] == [True] * 9


def test_bytes_a_killed_writer_left_are_written_over(tmp_path: pathlib.Path) -> None:
    store = LocalBlobStore(str(tmp_path / "blobs"))
    first, second = _blobs(5, 3000, b"a"), _blobs(5, 3000, b"b")
    store.put_many(first)
    pack = store.root + "/packs/00000001.pack"
    with open(pack, "ab") as f:  # appended, flushed, never indexed: the writer died
        f.write(b"torn" * 1000)
    orphan = store.root + "/packs/00000007.pack"  # created, never committed
    with open(orphan, "wb") as f:
        f.write(b"x" * 5000)
    store.put_many(second)
    for d, b in first + second:
        assert store.get(d) == b
    assert os.path.getsize(pack) == 10 * 3000  # the torn bytes were written over
    store.compact()
    assert not os.path.exists(orphan)


def test_a_writer_killed_mid_append_leaves_every_indexed_blob_readable(
    tmp_path: pathlib.Path,
) -> None:
    root = str(tmp_path / "blobs")
    child = textwrap.dedent(
        f"""
        import os, sys
        from cairn.core import digest_bytes
        from cairn.storage import LocalBlobStore
        store = LocalBlobStore({root!r})
        n = 0
        while True:
            batch = [os.urandom(2000 + i) for i in range(200)]
            store.put_many([(digest_bytes(b), b) for b in batch])
            n += 1
            if n == 3:
                print("ready", flush=True)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = LocalBlobStore(root)
    listed = list(store.list())
    assert len(listed) >= 600
    for info in listed:  # get verifies every byte against the digest
        assert len(store.get(info.digest)) == info.size
    more = _blobs(20, 4096, b"after")
    store.put_many(more)
    assert [store.get(d) == b for d, b in more] == [True] * 20


def test_opening_an_index_and_reading_it_writes_nothing(tmp_path: pathlib.Path) -> None:
    """A re-log opens the blob index and only reads it: no transaction, no fsync (setting
    auto_vacuum on an existing file rewrote its header at every open)."""
    root = str(tmp_path / "blobs")
    store = LocalBlobStore(root)
    items = _blobs(10, 4096)
    store.put_many(items)
    store.close()
    index = os.path.join(root, "small.sqlite")
    before = pathlib.Path(index).read_bytes()
    again = LocalBlobStore(root)
    assert again.has_many([d for d, _ in items]) == {d for d, _ in items}
    assert again.get(items[0][0]) == items[0][1]
    again.close()
    assert pathlib.Path(index).read_bytes() == before  # not even SQLite's change counter
    db = sqlite3.connect(index)
    assert db.execute("PRAGMA auto_vacuum").fetchone() == (2,)  # incremental, set at creation
    db.close()


def _make_first_format(root: str, items: list[tuple[str, bytes]], stored_at: float) -> None:
    """small.sqlite as cairn of store format 1 wrote it: the bytes in the ``blob`` table."""
    os.makedirs(os.path.join(root, "sha256"))
    os.makedirs(os.path.join(root, "tmp"))
    db = sqlite3.connect(os.path.join(root, "small.sqlite"), isolation_level=None)
    db.execute("PRAGMA page_size=16384")
    db.execute("PRAGMA auto_vacuum=INCREMENTAL")
    db.execute(
        "CREATE TABLE blob (digest BLOB PRIMARY KEY,"
        " size INTEGER NOT NULL, stored_at REAL NOT NULL, data BLOB NOT NULL)"
    )
    with db:  # one transaction
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO blob VALUES (?, ?, ?, ?)",
            [(bytes.fromhex(d[7:]), len(b), stored_at, b) for d, b in items],
        )
    db.close()


def test_a_first_format_store_is_moved_into_packs_when_opened(tmp_path: pathlib.Path) -> None:
    root = str(tmp_path / "blobs")
    items = [*_blobs(3000, 4096, b"v1"), (digest_bytes(b"tiny"), b"tiny")]
    _make_first_format(root, items, stored_at=1234.5)
    before = _disk_usage(root)
    store = LocalBlobStore(root)
    assert store.get(items[0][0]) == items[0][1]  # opening moved them
    tables = {
        r[0]
        for r in sqlite3.connect(os.path.join(root, "small.sqlite")).execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
        )
    }
    assert "blob" not in tables and {"pack", "packed"} <= tables
    assert {(i.digest, i.size, i.stored_at) for i in store.list()} == {
        (d, len(b), 1234.5) for d, b in items
    }
    for d, b in items:
        assert store.get(d) == b
    assert store.get_range(items[-1][0], 1, 2) == b"in"
    after = _disk_usage(root)
    assert after <= 1.1 * sum(len(b) for _, b in items) < before, (before, after)
    assert store.upgrade() == 0  # done once


def test_first_format_blobs_not_moved_yet_are_read_in_place(tmp_path: pathlib.Path) -> None:
    root = str(tmp_path / "blobs")
    store = LocalBlobStore(root)
    packed, legacy = _blobs(3, 100, b"new"), _blobs(3, 100, b"old")
    store.put_many(packed)
    # The state a move that could not finish leaves (the lock was busy, or the disk full): some
    # blobs still in the first format's table, which this store then reads in place.
    db = sqlite3.connect(os.path.join(root, "small.sqlite"), isolation_level=None)
    db.execute(
        "CREATE TABLE blob (digest BLOB PRIMARY KEY,"
        " size INTEGER NOT NULL, stored_at REAL NOT NULL, data BLOB NOT NULL)"
    )
    db.executemany(
        "INSERT INTO blob VALUES (?, ?, ?, ?)",
        [(bytes.fromhex(d[7:]), len(b), 5.0, b) for d, b in legacy],
    )
    db.close()
    store.packs.legacy = True
    everything = packed + legacy
    assert store.has_many([d for d, _ in everything]) == {d for d, _ in everything}
    assert [store.get(d) == b for d, b in everything] == [True] * 6
    assert store.get_range(legacy[2][0], 8, 4) == legacy[2][1][8:12]
    assert store.size(legacy[0][0]) == 100
    assert dict(store.get_many([d for d, _ in everything])) == dict(everything)
    assert store.upgrade() == 3
    assert not store.packs.legacy
    assert dict(store.get_many([d for d, _ in everything])) == dict(everything)


def test_a_first_format_store_opened_while_the_turn_is_held_is_read_in_place(
    tmp_path: pathlib.Path,
) -> None:
    """Opening a first-format store moves its blobs in the writers' turn; when another process
    holds the turn past the busy timeout, the store is read in place, as when SQLite's lock was
    busy, and moved later (on c37a53f every read failed with the turn's UnavailableError)."""
    root = str(tmp_path / "blobs")
    items = _blobs(3, 100, b"v1")
    _make_first_format(root, items, stored_at=5.0)
    store = LocalBlobStore(root)
    store.packs.busy_seconds = 0.1
    read: list[bytes | None] = []
    with turn_held_by_a_stopped_process(os.path.join(root, "small.sqlite")):
        assert raised_within(lambda: read.extend(store.get(d) for d, _ in items)) is None
    assert read == [b for _, b in items] and store.packs.legacy
    assert store.upgrade() == 3 and not store.packs.legacy
    store.close()


def test_a_batch_with_known_and_repeated_blobs_appends_each_new_one_once(
    tmp_path: pathlib.Path,
) -> None:
    store = LocalBlobStore(str(tmp_path / "blobs"))
    a, b, c = _blobs(3, 1000)
    store.put_many([a, b])
    db = store.packs.db()
    db.execute("UPDATE packed SET stored_at = 5")
    store.put_many([a, c, c])  # one known, one new twice
    assert os.path.getsize(store.root + "/packs/00000001.pack") == 3000
    stored = {i.digest: i.stored_at for i in store.list()}
    assert stored[b[0]] == 5 and (stored[a[0]] or 0) > 5 and (stored[c[0]] or 0) > 5
    assert [store.get(d) == data for d, data in (a, b, c)] == [True] * 3


def test_many_blobs_read_back_a_span_at_a_time_each_verified(tmp_path: pathlib.Path) -> None:
    """``get_many`` reads neighbouring blobs of a pack in one call (a download of small files):
    every blob comes back whole, in the order asked, whatever the sizes, gaps (deleted blobs)
    and packs in between, and a damaged one in the middle of a span is still refused."""
    from cairn.errors import DigestMismatchError
    from cairn.storage import _local_io

    store = LocalBlobStore(str(tmp_path / "blobs"))
    items = _blobs(300, 700) + _blobs(40, 60_000, b"big") + _blobs(300, 9, b"tiny")
    for start in range(0, len(items), 64):
        store.put_many(items[start : start + 64])
    store.packs.delete([bytes.fromhex(d[7:]) for d, _ in items[100:140]])  # gaps in a span
    kept = items[:100] + items[140:]
    asked = [*(d for d, _ in kept[::-1]), kept[5][0]]  # backwards, and one asked twice
    calls = []
    real = _local_io.pread_all
    _local_io.pread_all = lambda fd, n, off: calls.append(n) or real(fd, n, off)
    try:
        assert list(store.get_many(asked)) == [(d, dict(kept)[d]) for d in dict.fromkeys(asked)]
    finally:
        _local_io.pread_all = real
    assert len(calls) < len(kept) // 10  # spans, not one read per blob
    # One byte of a blob in the middle of a span changed on disk: refused, naming the blob.
    pack, offset, _ = (
        store.packs.db()
        .execute(
            "SELECT pack, offset, size FROM packed WHERE digest = ?",
            (bytes.fromhex(kept[150][0][7:]),),
        )
        .fetchone()
    )
    with open(store.packs.pack_path(pack), "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 1]))
    try:
        list(store.get_many([d for d, _ in kept[140:160]]))
    except DigestMismatchError as exc:
        assert kept[150][0] in str(exc)
    else:
        raise AssertionError("a damaged blob was read back")


@pytest.mark.skipif(not os.path.exists("/proc/locks"), reason="reads /proc/locks (Linux)")
def test_a_writer_waits_for_its_turn_in_a_queue_not_on_sqlites_lock(tmp_path: pathlib.Path) -> None:
    """Eight processes storing blobs at once waited for SQLite's write lock by polling (sleeps
    growing to 100 ms): the lock was handed on late, and one waited most of a second while the
    others took turns. A writer now waits in the kernel's queue (``writer_turn``): while another
    process has the turn, it waits there, and SQLite's lock stays free. (On the old code the
    put went straight to SQLite's lock and was done.)"""
    root = str(tmp_path / "blobs")
    store = LocalBlobStore(root)
    store.put_many(_blobs(1, 4096))  # the index exists
    items = _blobs(20, 4096, b"queued")
    db_path = os.path.join(root, "small.sqlite")
    assert waits_its_turn(db_path, lambda: store.put_many(items))
    assert store.has_many([d for d, _ in items]) == {d for d, _ in items}
    store.close()


@pytest.mark.skipif(not os.path.exists("/proc/locks"), reason="reads /proc/locks (Linux)")
def test_a_large_batch_is_written_and_flushed_before_the_writers_turn(
    tmp_path: pathlib.Path,
) -> None:
    """Eight upserting processes held the turn in line each through its 10 MB write and flush.
    A batch of ``OWN_PACK`` bytes or more is now written into a file of its own before the
    writer queues (on the old code nothing was written before the turn); in its turn the file
    becomes a new pack, indexed in the same transaction."""
    root = str(tmp_path / "blobs")
    store = LocalBlobStore(root)
    store.put_many(_blobs(1, 4096))  # the index and its first pack exist
    items = _blobs(OWN_PACK // 4096 + 10, 4096, b"own")
    size = sum(len(b) for _, b in items)
    writer = threading.Thread(target=store.put_many, args=(items,))
    with writer_turn_held(os.path.join(root, "small.sqlite")) as queued:
        writer.start()
        waited = queued(writer)
        partial = [e.stat().st_size for e in os.scandir(os.path.join(root, "tmp"))]
    writer.join()
    assert waited and partial == [size]
    assert sorted(os.listdir(os.path.join(root, "packs"))) == ["00000001.pack", "00000002.pack"]
    assert os.path.getsize(os.path.join(root, "packs", "00000002.pack")) == size
    assert os.listdir(os.path.join(root, "tmp")) == []
    assert store.get(items[-1][0]) == items[-1][1]
    store.close()
    again = LocalBlobStore(root)  # indexed durably, as any append
    assert again.has_many([d for d, _ in items]) == {d for d, _ in items}
    again.close()


def test_a_large_batch_with_a_known_blob_appends_the_new_ones_as_before(
    tmp_path: pathlib.Path,
) -> None:
    store = LocalBlobStore(str(tmp_path / "blobs"))
    known = _blobs(1, 4096, b"known")
    store.put_many(known)
    items = _blobs(OWN_PACK // 4096 + 10, 4096, b"new")
    store.put_many([*items, known[0]])
    assert os.listdir(os.path.join(store.root, "packs")) == ["00000001.pack"]
    assert os.listdir(os.path.join(store.root, "tmp")) == []  # its own file was dropped
    assert _disk_usage(os.path.join(store.root, "packs")) <= 1.01 * (len(items) + 1) * 4096
    assert store.get(items[5][0]) == items[5][1]
    store.close()


def test_a_child_forked_during_a_turn_does_not_keep_the_writers_waiting(
    tmp_path: pathlib.Path,
) -> None:
    """A lock of ``flock`` belongs to the open file, and a fork copies the open files: a child
    forked (multiprocessing, a data loader's workers) while a thread of its parent has the
    writers' turn held it on after the parent left its turn, and every writer of the store
    waited for the child to exit. The child now closes its copy at once (fails on 3b459ee: the
    turn is still taken while the child lives)."""
    import fcntl

    from cairn.storage import writer_turn

    db = str(tmp_path / "small.sqlite")
    r, w = os.pipe()
    started_r, started_w = os.pipe()
    with writer_turn(db):
        child = os.fork()
        if child == 0:  # the child lives on (a worker) until the test lets it go
            os.close(w)
            os.write(started_w, b"s")  # after the fork's hooks ran in the child
            os.read(r, 1)
            os._exit(0)
    os.close(r)
    os.close(started_w)
    assert os.read(started_r, 1) == b"s"
    os.close(started_r)
    try:
        other = os.open(db + ".writers.lock", os.O_RDONLY)
        try:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError on the old code
        finally:
            os.close(other)
    finally:
        os.close(w)
        os.waitpid(child, 0)


def test_a_writer_waits_for_its_turn_only_as_long_as_sqlite_waited(tmp_path: pathlib.Path) -> None:
    """SQLite's busy handler gave up after its timeout (60 s); the writers' queue waited with no
    bound, so a holder stopped by Ctrl-Z or a debugger kept every writer of the store waiting
    until it went on. A writer now waits as long as SQLite did (``busy_seconds``), then is
    refused with the holder named, nothing written (a large batch's own file dropped too);
    once the holder is gone the same put is stored. (On the old code the put waits on: the
    bound on a hang fails it.)"""
    from cairn.errors import UnavailableError
    from cairn.storage import writer_turn

    root = str(tmp_path / "blobs")
    store = LocalBlobStore(root)
    store.put_many(_blobs(1, 4096))  # the index and its first pack exist
    small, large = _blobs(5, 4096, b"small"), _blobs(OWN_PACK // 4096 + 1, 4096, b"large")
    db = os.path.join(root, "small.sqlite")
    store.packs.busy_seconds = 0.2
    with turn_held_by_a_stopped_process(db) as pid:
        for batch in (small, large):
            refused = raised_within(lambda batch=batch: store.put_many(batch))
            assert isinstance(refused, UnavailableError), refused
            assert f"process {pid}" in str(refused) and "Ctrl-Z" in str(refused)
        assert store.has_many([d for d, _ in small + large]) == set()
        assert os.listdir(os.path.join(root, "tmp")) == []
    store.put_many(small + large)  # the holder gone (the given-up waits let the turn go)
    assert store.get(large[-1][0]) == large[-1][1] and store.get(small[0][0]) == small[0][1]
    with writer_turn(db):  # held by another thread of this process
        refused = raised_within(lambda: writer_turn(db, 0.05).__enter__())
    assert isinstance(refused, UnavailableError) and "this process" in str(refused)
    with writer_turn(db, 5):
        pass
    store.close()


def test_waits_given_up_on_a_stopped_holder_keep_one_thread_and_file(
    tmp_path: pathlib.Path,
) -> None:
    """Each wait for a turn given up on stays in the kernel's queue until the holder lets go
    (a blocked flock cannot be called off): the next wait of the process takes it up instead
    of starting a thread and opening the file again, so a server refusing write after write
    while a stopped process holds the turn keeps one thread and one descriptor, not one of
    each per refusal (review N1; fails on the old code: three of each), and once the holder is
    gone they are back."""
    from cairn.errors import UnavailableError
    from cairn.storage import writer_turn

    db = str(tmp_path / "small.sqlite")
    lock = os.path.realpath(db + ".writers.lock")

    def files() -> int:
        out = 0
        for fd in os.listdir("/proc/self/fd"):
            try:
                out += os.readlink(f"/proc/self/fd/{fd}") == lock
            except OSError:
                pass  # closed meanwhile (the listing's own descriptor)
        return out

    def waits() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "cairn-flock-wait"]

    def write() -> None:
        with writer_turn(db, 0.05):
            pass

    before = set(waits())
    with turn_held_by_a_stopped_process(db) as pid:
        for _ in range(3):
            refused = raised_within(write)
            assert isinstance(refused, UnavailableError) and f"process {pid}" in str(refused)
        pending = [t for t in waits() if t not in before]
        assert files() == 1 and len(pending) == 1, (files(), pending)
    for t in pending:
        t.join(30)  # a bound on a hang: the holder is gone, the pending wait lets the turn go
    assert files() == 0 and not any(t.is_alive() for t in pending)
    write()
    assert files() == 0
