"""Issue 13, item 3: new files are read, hashed and stored by worker processes
(``CAIRN_STAGE_WORKERS``), with exactly the result of one process; a killed worker or parent
leaves nothing visible."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

import cairn
from cairn.core import digest_bytes
from cairn.errors import CommError, ValidationError
from cairn.sdk import _scan, _stage_pool, _staging, _whole
from cairn.sdk._stage_pool import StagePool
from tests.conftest import write
from tests.sdk.test_relog import _expected

POOL_MODULE = "cairn.sdk._stage_worker"


def _tree(root: pathlib.Path, files: int = 300) -> None:
    for i in range(files):  # several chunks of small files, two of them twice (one blob)
        write(root / f"d{i % 7}" / f"f{i:04}.txt", f"file {i % (files - 2)}\n" * (i % 13))
    for i in range(3):  # too large for a pack (1 MiB or more): blob files, durability batched
        write(root / "mid" / f"m{i}.bin", bytes([i]) * ((1 << 20) + i))
    write(root / "big" / "b.bin", b"B" * (9 << 20))  # streamed into the store, as ever


def _log(name: str, root: pathlib.Path) -> cairn.Artifact:
    art = cairn.Artifact(name, "dataset")
    art.add_dir(str(root))
    with cairn.init(project="p") as run:
        run.log_artifact(art)
    return art


def _another_store(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, workers: str) -> None:
    """From here on, a second store and cache (every blob stored again, no stat-cache hits),
    with ``workers`` staging processes."""
    monkeypatch.setenv("CAIRN_DIR", str(tmp_path / "store2"))
    monkeypatch.setenv("CAIRN_CACHE_DIR", str(tmp_path / "cache2"))
    monkeypatch.setenv("CAIRN_STAGE_WORKERS", workers)


def _store_blobs() -> dict[str, int]:
    from cairn.sdk import current_service

    blobs = current_service().blobs  # type: ignore[attr-defined]
    return {info.digest: info.size for info in blobs.list()}


@pytest.fixture
def pool_for_small_jobs(monkeypatch: pytest.MonkeyPatch) -> list[StagePool]:
    """Workers for any job of two files or more, however small; the pools started, for the
    test to see."""
    monkeypatch.setattr(_staging, "POOL_FILES", 2)
    monkeypatch.setattr(_scan, "POOL_FILES", 2)  # the walk starts them (and reads ahead) too
    monkeypatch.setattr(_staging, "POOL_MEAN_BYTES", 0)
    started: list[StagePool] = []
    real = _stage_pool.StagePool

    def spy(*args: object) -> StagePool:
        pool = real(*args)  # type: ignore[arg-type]
        started.append(pool)
        return pool

    monkeypatch.setattr(_stage_pool, "StagePool", spy)
    return started


Data = Callable[..., pathlib.Path]


@pytest.fixture
def data(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Data:
    """``data(files, workers=...)``: the test's tree (``_tree``) in ``tmp_path/data``, staged
    with ``CAIRN_STAGE_WORKERS=workers``."""

    def make(files: int = 300, *, workers: str) -> pathlib.Path:
        root = tmp_path / "data"
        _tree(root, files)
        monkeypatch.setenv("CAIRN_STAGE_WORKERS", workers)
        return root

    return make


@pytest.mark.embedded_only
@pytest.mark.parametrize("streamed", [False, True])
def test_workers_store_exactly_what_one_process_stores(
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    pool_for_small_jobs: list[StagePool],
    data: Data,
    streamed: bool,
) -> None:
    if streamed:  # the large-directory path: staged 50 files at a time into manifest pages
        monkeypatch.setattr(_scan, "STREAM_THRESHOLD", 10)
        monkeypatch.setattr(_scan, "STREAM_CHUNK", 50)
    root = data(workers="1")
    one = _log("one", root)
    assert not pool_for_small_jobs
    blobs_one = _store_blobs()
    _another_store(tmp_path, monkeypatch, workers="3")  # the workers store every blob themselves
    many = _log("many", root)
    assert len(pool_for_small_jobs) == 1 and pool_for_small_jobs[0].size == 2
    assert one.digest == many.digest == _expected(root)
    assert _store_blobs() == blobs_one
    out = pathlib.Path(many.download(str(tmp_path / "out")))
    assert (out / "mid" / "m2.bin").read_bytes() == bytes([2]) * ((1 << 20) + 2)
    assert (out / "d3" / "f0003.txt").read_text() == "file 3\n" * 3
    assert all(p.poll() is not None for p in pool_for_small_jobs[0]._procs)  # ended


@pytest.mark.embedded_only
def test_a_file_changed_while_a_worker_reads_it_is_refused(
    monkeypatch: pytest.MonkeyPatch, pool_for_small_jobs: list[StagePool], data: Data
) -> None:
    root = data(20, workers="2")
    walk = _scan.walk_tree

    def walk_then_change(*args: str):  # type: ignore[no-untyped-def]
        yield from walk(*args)
        write(root / "d0" / "f0000.txt", "longer than it was when walked")

    monkeypatch.setattr(_scan, "walk_tree", walk_then_change)
    art = cairn.Artifact("changed", "dataset")
    with pytest.raises(ValidationError, match="changed while cairn was reading it"):
        art.add_dir(str(root))
    assert all(p.poll() is not None for p in pool_for_small_jobs[0]._procs)


@pytest.mark.embedded_only
def test_a_killed_worker_fails_the_log_and_commits_nothing(
    monkeypatch: pytest.MonkeyPatch, pool_for_small_jobs: list[StagePool], data: Data
) -> None:
    root = data(2_000, workers="3")  # this process and two workers
    real_answer = StagePool.answer
    answers = []

    def answer_then_kill(self: StagePool, worker: int):  # type: ignore[no-untyped-def]
        answers.append(worker)
        if len(answers) == 2:  # after the first answer, the second worker is killed
            os.kill(self._procs[1].pid, signal.SIGKILL)
        return real_answer(self, worker)

    monkeypatch.setattr(StagePool, "answer", answer_then_kill)
    with cairn.init(project="p") as run:
        art = cairn.Artifact("killed", "dataset")
        with pytest.raises(CommError, match="staging worker process ended unexpectedly"):
            art.add_dir(str(root))
        del art
        assert all(p.poll() is not None for p in pool_for_small_jobs[0]._procs)
        assert cairn.Api().artifact_collections("p", "dataset") == []
        del run


def _workers_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if ppid == pid and POOL_MODULE.encode() in cmdline:
            found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.embedded_only
@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="finds the workers in /proc")
def test_a_killed_parent_ends_its_workers_and_commits_nothing(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store2"
    script = (  # adds directories of new files until it is killed
        "import os, sys, cairn\n"
        "with cairn.init(project='p') as run:\n"
        "    for n in range(1000):\n"
        "        root = os.path.join(sys.argv[1], str(n))\n"
        "        for i in range(2500):\n"
        "            os.makedirs(os.path.join(root, str(i % 10)), exist_ok=True)\n"
        "            with open(os.path.join(root, str(i % 10), str(i)), 'wb') as f:\n"
        "                f.write(os.urandom(2048))\n"
        "        art = cairn.Artifact(f'a{n}', 'dataset')\n"
        "        art.add_dir(root)\n"
    )
    env = {
        **os.environ,
        "CAIRN_DIR": str(store),
        "CAIRN_STAGE_WORKERS": "2",
        "CAIRN_SILENT": "true",
    }
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "data")], env=env)
    try:
        workers: list[int] = []
        deadline = time.monotonic() + 120
        while not workers and time.monotonic() < deadline and proc.poll() is None:
            workers = _workers_of(proc.pid)
        assert workers, "no staging worker was started"
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 60
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(w) for w in workers), "a worker outlived its parent"
    monkeypatch.setenv("CAIRN_DIR", str(store))
    assert cairn.Api().artifact_collections("p", "dataset") == []


@pytest.mark.parametrize("value", ["0", "many", "-2"])
def test_a_bad_worker_count_is_refused(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAIRN_STAGE_WORKERS", value)
    art = cairn.Artifact("x", "dataset")
    with pytest.raises(ValidationError, match="CAIRN_STAGE_WORKERS"):
        art.add_file(write("a.txt", "a"))


@pytest.mark.embedded_only
def test_workers_read_while_the_walk_goes_on(
    monkeypatch: pytest.MonkeyPatch, pool_for_small_jobs: list[StagePool], data: Data
) -> None:
    root = data(1_500, workers="2")
    walked: list[bool] = []
    sent_before_the_end: list[bool] = []
    walk = _scan.walk_tree

    def watched(*args: str):  # type: ignore[no-untyped-def]
        yield from walk(*args)
        walked.append(True)

    real_submit = StagePool.submit

    def submit(self: StagePool, *args: object) -> None:
        sent_before_the_end.append(not walked)
        real_submit(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(_scan, "walk_tree", watched)
    monkeypatch.setattr(StagePool, "submit", submit)
    art = _log("ahead", root)
    assert art.digest == _expected(root)
    assert walked and any(sent_before_the_end), "no chunk went to a worker before the walk ended"


@pytest.mark.embedded_only
def test_a_walk_that_fails_ends_the_workers_reading_ahead(
    monkeypatch: pytest.MonkeyPatch, pool_for_small_jobs: list[StagePool], data: Data
) -> None:
    root = data(1_500, workers="2")
    walk = _scan.walk_tree

    def walk_then_fail(*args: str):  # type: ignore[no-untyped-def]
        yield from walk(*args)
        raise ValidationError("the walk met something it cannot add")

    monkeypatch.setattr(_scan, "walk_tree", walk_then_fail)
    art = cairn.Artifact("failed", "dataset")
    with pytest.raises(ValidationError, match="cannot add"):
        art.add_dir(str(root))
    assert len(pool_for_small_jobs) == 1
    assert all(p.poll() is not None for p in pool_for_small_jobs[0]._procs)
    monkeypatch.setattr(_scan, "walk_tree", walk)
    art.add_dir(str(root))  # the same stager stages the directory again, from the start
    with cairn.init(project="p") as run:
        run.log_artifact(art)
    assert art.digest == _expected(root)


@pytest.mark.embedded_only
def test_files_of_blob_file_size_go_to_the_workers_by_default(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, pool_for_small_jobs: list[StagePool]
) -> None:
    root = tmp_path / "data"
    for i in range(6):  # image-sized: packed, written behind by the workers too
        write(root / f"i{i}.bin", bytes([i]) * (200_000 + i))
    write(root / "small.txt", "small")
    monkeypatch.delenv("CAIRN_STAGE_WORKERS", raising=False)
    monkeypatch.setattr(_staging, "default_workers", lambda: 2)  # two cores, whatever this has
    monkeypatch.setattr(_staging, "runnable", lambda: 1)  # a quiet machine, whatever this is
    two = _log("images", root)
    assert len(pool_for_small_jobs) == 1
    _another_store(tmp_path, monkeypatch, workers="1")  # chosen: this process alone
    one = _log("images", root)
    assert len(pool_for_small_jobs) == 1
    assert one.digest == two.digest == _expected(root)


@pytest.mark.embedded_only
def test_read_ahead_answers_files_asked_for_in_another_order(tmp_path: pathlib.Path) -> None:
    from cairn.core import digest_bytes
    from cairn.sdk._read_ahead import ReadAhead
    from cairn.storage import LocalBlobStore

    store = LocalBlobStore(str(tmp_path / "blobs"))
    files = []
    for i in range(600):
        path = write(tmp_path / "d" / f"f{i:03}", f"content {i}\n" * (i % 50 + 1))
        files.append((os.path.dirname(path), os.path.basename(path), os.stat(path)))
    here: list[tuple[str, bytes]] = []
    pool = StagePool(1, store.root, store.small_limit, store.durable)
    try:
        ahead = ReadAhead(pool, lambda blobs, size: here.extend(blobs))
        ahead.add(files[:500])  # found by a walk, read by the worker and here
        # Asked for in another order, and with files never handed in (the slow way, by name).
        order = [*range(0, 500, 2), *range(1, 600, 2)]
        got = [answer for run in ahead.take(files, order) for answer in run]
        ahead.drain()
        pool.flush()
    finally:
        pool.close()
    expected = [digest_bytes((f"content {i}\n" * (i % 50 + 1)).encode()) for i in order]
    assert [digest for digest, _, _ in got] == expected
    assert [size for _, size, _ in got] == [files[i][2].st_size for i in order]
    stored = {digest for digest, _ in here} | {info.digest for info in store.list()}
    assert set(expected) <= stored


def test_closing_the_pool_is_woken_when_a_worker_ends_not_by_polling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every log that started a worker waits for it to end; ``Popen.wait(timeout=)`` would sleep
    in steps of up to 50 ms to find out. The pool's wait sleeps not at all, and still gives up
    on a worker that does not end."""
    naps: list[float] = []
    sleep = time.sleep
    monkeypatch.setattr(subprocess.time, "sleep", lambda s: (naps.append(s), sleep(s)))  # type: ignore[attr-defined]
    ends = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    assert _stage_pool._wait_exit(ends, 30) == 0
    assert naps == []
    hangs = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            _stage_pool._wait_exit(hangs, 0.2)
    finally:
        hangs.kill()
        hangs.wait()
    assert _stage_pool._wait_exit(hangs, 30) == -signal.SIGKILL  # reaped: not waited for again


@pytest.mark.embedded_only
def test_a_modest_job_gets_no_worker_while_more_processes_run_than_cores() -> None:
    worth = _whole.worth_workers
    shard = (2_500, 2_500 * 4096)  # one of eight processes' shard of s1
    assert worth(*shard, 1, 2) and worth(*shard, 2, 2)  # a core is idle (or about to be)
    assert worth(*shard, None, 2)  # the system does not say: as on a quiet machine
    assert not worth(*shard, 3, 2) and not worth(*shard, 9, 2)  # every core is taken
    assert worth(*shard, 9, 16)
    assert worth(_whole.BUSY_FILES, 20_000 * 4096, 9, 2)  # a large job still gets them
    assert worth(5_000, _whole.BUSY_BYTES, 9, 2)  # image-sized files: bytes count too
    running = _whole.runnable()
    assert running is None or running >= 1  # this process is running as it reads it


@pytest.mark.embedded_only
@pytest.mark.parametrize(
    ("running", "workers", "started"), [(9, None, 0), (1, None, 1), (9, "2", 1)]
)
def test_a_busy_machine_starts_no_worker_unless_the_settings_chose_them(
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    pool_for_small_jobs: list[StagePool],
    running: int,
    workers: str | None,
    started: int,
) -> None:
    root = tmp_path / "data"
    for i in range(40):
        write(root / f"d{i % 3}" / f"f{i:02}.txt", f"file {i}\n" * i)
    monkeypatch.setattr(_staging, "default_workers", lambda: 2)
    monkeypatch.setattr(_staging.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(_staging, "runnable", lambda: running)
    if workers is None:
        monkeypatch.delenv("CAIRN_STAGE_WORKERS", raising=False)
    else:
        monkeypatch.setenv("CAIRN_STAGE_WORKERS", workers)
    art = _log("busy", root)
    assert len(pool_for_small_jobs) == started
    assert art.digest == _expected(root)


class _SlowPool:
    """A pool of one worker that answers only when made to (``answer``), reading the files it
    was sent: the caller's side of ``ReadAhead`` without a process."""

    size = 1

    def __init__(self) -> None:
        self.sent: list[list[str]] = []  # names of each chunk sent, in order
        self._unanswered: list[list[tuple[str, str, int, int, int]]] = []
        self.answers_taken = 0
        self.flush_asked: list[int] = []  # answers taken when each flush was asked

    def flush_soon(self) -> None:
        self.flush_asked.append(self.answers_taken)

    def poll(self) -> None:
        pass

    def backlog(self, worker: int) -> int:
        return len(self._unanswered)

    def answered(self, worker: int) -> bool:
        return False  # still reading: the caller reads meanwhile

    def submit(self, worker: int, jobs: list[tuple[str, str, int, int, int]], started: int) -> None:
        self.sent.append([name for _, name, _, _, _ in jobs])
        self._unanswered.append(jobs)

    def answer(self, worker: int) -> list[tuple[str, int, object]]:
        from cairn.core import digest_bytes

        jobs = self._unanswered.pop(0)
        self.answers_taken += 1
        return [
            (digest_bytes(pathlib.Path(d, n).read_bytes()), size, None) for d, n, size, _, _ in jobs
        ]


@pytest.mark.embedded_only
def test_the_caller_reads_nothing_while_it_walks_then_reads_from_the_back(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cairn.core import digest_bytes
    from cairn.sdk import _read_ahead

    monkeypatch.setattr(_read_ahead, "CHUNK_FILES", 4)
    files = []
    for i in range(40):  # ten chunks
        path = write(tmp_path / "d" / f"f{i:02}", f"content {i}\n")
        files.append((os.path.dirname(path), os.path.basename(path), os.stat(path)))
    read_here: list[str] = []
    pool = _SlowPool()
    ahead = _read_ahead.ReadAhead(
        pool,  # type: ignore[arg-type]
        lambda blobs, size: read_here.extend(digest for digest, _ in blobs),
    )
    ahead.add(files[:20])
    ahead.add(files[20:])  # the walk is over: the worker holds its first chunks, nothing read here
    assert read_here == []
    assert pool.sent == [[f"f{i:02}" for i in range(k, k + 4)] for k in (0, 4, 8, 12)]
    got = [answer for run in ahead.take(files, list(range(40))) for answer in run]
    assert [digest for digest, _, _ in got] == [
        digest_bytes(f"content {i}\n".encode()) for i in range(40)
    ]
    # While the worker had not answered its first chunk, this process read the others, last first.
    by_chunk = [
        [digest_bytes(f"content {i}\n".encode()) for i in range(k, k + 4)]
        for k in range(36, 15, -4)
    ]
    assert read_here == [digest for chunk in by_chunk for digest in chunk]
    assert len(pool.sent) == 4
    # Once the last chunk was given out (here: read by this process), the worker was asked to
    # write its blobs, before this process took its answers (the old code asked only in
    # ``release_workers``, after every answer was taken).
    assert pool.flush_asked and pool.flush_asked[0] == 0


@pytest.mark.embedded_only
def test_a_flush_asked_early_covers_only_the_chunks_sent_before_it(tmp_path: pathlib.Path) -> None:
    from cairn.storage import LocalBlobStore

    store = LocalBlobStore(str(tmp_path / "blobs"))
    jobs = []
    for i in range(4):
        path = write(tmp_path / "d" / f"f{i}", f"content {i}\n")
        st = os.stat(path)
        jobs.append((os.path.dirname(path), f"f{i}", st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    pool = StagePool(1, store.root, store.small_limit, store.durable)
    try:
        pool.submit(0, jobs[:2], time.time_ns())
        pool.flush_soon()  # the last chunk, as it seemed
        pool.flush_soon()  # asked once
        first = pool.answer(0)
        pool.submit(0, jobs[2:], time.time_ns())  # another job on the same workers after all
        second = pool.answer(0)
        pool.flush()  # asks again: the second chunk's blobs were not covered
    finally:
        pool.close()
    assert pool._flushes == pool._flushed == [2]
    stored = {info.digest for info in store.list()}
    assert {digest for digest, _, _ in first + second} <= stored and len(stored) == 4


@pytest.mark.embedded_only
def test_a_worker_runs_in_a_process_group_of_its_own(tmp_path: pathlib.Path) -> None:
    # Ctrl-C in a terminal reaches the foreground process group: the caller, which closes its
    # workers' input. A worker ignored SIGINT itself before, and paid the signal module (and
    # enum) at every start for it.
    from cairn.storage import LocalBlobStore

    store = LocalBlobStore(str(tmp_path / "blobs"))
    pool = StagePool(1, store.root, store.small_limit, store.durable)
    try:
        pid = pool._procs[0].pid
        assert os.getpgid(pid) == pid != os.getpgrp()
    finally:
        pool.close()
    assert pool._procs[0].returncode == 0


@pytest.mark.embedded_only
def test_a_module_in_the_callers_directory_does_not_shadow_the_workers(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The worker started with the caller's working directory first on sys.path: a queue.py of
    # the user's there was imported instead of the standard library's (review N3).
    from cairn.storage import LocalBlobStore

    (tmp_path / "queue.py").write_text("raise ImportError('the user's queue.py')\n")
    monkeypatch.chdir(tmp_path)
    store = LocalBlobStore(str(tmp_path / "blobs"))
    path = write(tmp_path / "d" / "f", b"data")
    st = os.stat(path)
    pool = StagePool(1, store.root, store.small_limit, store.durable)
    try:
        pool.submit(
            0, [(os.path.dirname(path), "f", 4, st.st_mtime_ns, st.st_ctime_ns)], time.time_ns()
        )
        assert [digest for digest, _, _ in pool.answer(0)] == [digest_bytes(b"data")]
    finally:
        pool.close()


@pytest.mark.embedded_only
def test_a_worker_writes_its_small_blobs_while_it_reads(tmp_path: pathlib.Path) -> None:
    # A buffer of EARLY_BLOBS small blobs (EARLY_BYTES or more) goes to the worker's idle writer
    # at once, not at 32 MiB or at the flush: what is left to write after its last read is what
    # it read meanwhile (s1's worker wrote up to 8,192 blobs after it had read them all).
    from cairn.storage import LocalBlobStore

    store = LocalBlobStore(str(tmp_path / "blobs"))
    count, size = _whole.EARLY_BLOBS, -(-_whole.EARLY_BYTES // _whole.EARLY_BLOBS)
    jobs = []
    for i in range(count):
        path = write(tmp_path / "d" / f"f{i}", i.to_bytes(4, "little") * (size // 4))
        st = os.stat(path)
        jobs.append((os.path.dirname(path), f"f{i}", st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    pool = StagePool(1, store.root, store.small_limit, store.durable)
    try:
        pool.submit(0, jobs, time.time_ns())
        digests = {digest for digest, _, _ in pool.answer(0)}
        deadline = time.monotonic() + 60  # a bound on a hang (no flush asked: its own write)
        while store.has_many(digests) != digests and time.monotonic() < deadline:
            time.sleep(0.01)
        assert store.has_many(digests) == digests
        pool.flush()
    finally:
        pool.close()


@pytest.mark.embedded_only
def test_the_caller_hands_its_small_blobs_to_an_idle_writer_while_it_shares_a_job() -> None:
    from typing import Any, cast

    from cairn.sdk import current_service

    service = current_service()
    stager = _staging.Stager(service, None, workers=1)
    batches: list[list[tuple[str, bytes]]] = []
    stager._service = cast(Any, type("S", (), {"is_local": True, "store_blobs": batches.append}))
    blobs = [(f"sha256:{i:064x}", bytes(4096)) for i in range(_whole.EARLY_BLOBS)]
    stager._buffer_extend(blobs, 4096 * len(blobs))  # alone: kept until 32 MiB (or the flush)
    stager.flush()
    assert batches == [blobs]
    batches.clear()
    stager._ahead = cast(Any, object())  # reading a job with workers
    stager._buffer_extend(blobs[:-1], 4096 * (len(blobs) - 1))
    assert len(stager._writes) == 0
    stager._buffer_extend(blobs[-1:], 4096)
    stager._ahead = None
    assert len(stager._writes) == 1  # handed over at once
    stager.flush()
    assert batches == [blobs]


@pytest.mark.embedded_only
def test_each_file_is_opened_by_name_in_its_directory_and_read_once(
    monkeypatch: pytest.MonkeyPatch, data: Data
) -> None:
    root = data(40, workers="1")  # this process reads every file (a worker reads as it does)
    opened: list[tuple[str, int | None]] = []
    real_open = os.open

    def spy(path: str, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        if not flags & os.O_DIRECTORY and str(path).endswith(".txt"):
            opened.append((str(path), dir_fd))
        return real_open(path, flags, mode, dir_fd=dir_fd)

    monkeypatch.setattr(os, "open", spy)
    art = _log("by-name", root)
    assert art.digest == _expected(root)
    # Each file opened once, by its name relative to its directory's descriptor: the whole path
    # is not looked up again for every file (the old code opened ``os.path.join(d, name)``).
    assert sorted(path for path, _ in opened) == sorted(p.name for p in root.rglob("*.txt"))
    assert all(dir_fd is not None for _, dir_fd in opened)


@pytest.mark.embedded_only
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_file_gone_before_it_is_read_fails_the_log_naming_it(
    monkeypatch: pytest.MonkeyPatch,
    pool_for_small_jobs: list[StagePool],
    data: Data,
    workers: str,
) -> None:
    root = data(600, workers=workers)  # workers: a few chunks for each reader
    walk = _scan.walk_tree
    gone = [root / "d0" / "f0000.txt", root / "d6" / "f0594.txt"]  # one at each end

    def walk_then_remove(*args: str):  # type: ignore[no-untyped-def]
        yield from walk(*args)
        for path in gone:
            path.unlink()

    monkeypatch.setattr(_scan, "walk_tree", walk_then_remove)
    with cairn.init(project="p") as run:
        art = cairn.Artifact("gone", "dataset")
        with pytest.raises(FileNotFoundError) as failed:
            art.add_dir(str(root))
        assert str(failed.value.filename) in {str(p) for p in gone}  # the whole path
        assert str(failed.value.filename) in str(failed.value)
        assert cairn.Api().artifact_collections("p", "dataset") == []
        del run
    for pool in pool_for_small_jobs:
        assert all(p.poll() is not None for p in pool._procs)  # ended
