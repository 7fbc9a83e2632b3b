"""Issue 14: an image-shaped dataset through a server in few requests both ways, large files in
parallel parts that resume (after a killed client, a killed server, an upload the server lost),
large downloads in parallel ranges, and damaged content refused on the way down."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pathlib
import random
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

import cairn
import cairn.service
from cairn.core import ManifestEntry, digest_bytes
from cairn.errors import (
    ConflictError,
    DigestMismatchError,
    UnavailableError,
    ValidationError,
)
from cairn.server._stream_upload import receive_stream
from cairn.service import CommitRequest, DownloadCache
from cairn.service._http import HttpService
from tests._infra import (
    CairnServer,
    InProcessServer,
    Postgres,
    S3Server,
    raised_within,
    reset_database,
    run_coroutine,
    use_in_process,
)
from tests.conftest import InProcess

MiB = 1 << 20


def _counter(svc: HttpService, seen: Counter[str]) -> None:
    def hook(request: httpx.Request) -> None:
        path = request.url.path.split("/api/v1", 1)[-1]
        if "/uploads/" in path:
            path = "/uploads/" + path.split("/uploads/", 1)[1].split("/", 1)[-1].rstrip(
                "0123456789"
            )
        elif path.startswith("/blobs/sha256:"):
            path = "/blobs/<digest>"
        seen[f"{request.method} {path}"] += 1

    svc._client.api.event_hooks["request"].append(hook)


def _images(root: pathlib.Path, count: int, seed: int = 14) -> dict[str, bytes]:
    """``count`` files of 130-200 KiB (image-shaped: each above the small-blob limit)."""
    rng = random.Random(seed)
    files: dict[str, bytes] = {}
    for i in range(count):
        data = rng.randbytes(rng.randrange(130 << 10, 200 << 10))
        path = root / f"c{i % 10}" / f"img{i:04}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files[f"c{i % 10}/img{i:04}.jpg"] = data
    return files


@pytest.fixture(params=["sqlite-local", "postgres-s3"])
def app(request: pytest.FixtureRequest, inprocess: InProcess) -> InProcessServer:
    server = inprocess(*request.param.split("-"))
    reset_database(server.db)
    return server


def _use(
    app: InProcessServer, monkeypatch: pytest.MonkeyPatch, cache: pathlib.Path
) -> Counter[str]:
    """Point the SDK at ``app`` (a fresh download cache); count the requests it makes."""
    seen: Counter[str] = Counter()
    use_in_process(app, monkeypatch, str(cache), lambda svc: _counter(svc, seen))
    return seen


@pytest.mark.slow  # long: dealt out first (tests/conftest.py)
def test_image_set_costs_few_requests_per_file_both_ways(
    app: InProcessServer, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = _images(tmp_path / "images", 400)
    seen = _use(app, monkeypatch, tmp_path / "cache")
    with cairn.init(project="p") as run:
        art = cairn.Artifact("images", "dataset")
        art.add_dir(str(tmp_path / "images"))
        run.log_artifact(art)
    up = sum(seen.values())
    assert seen["POST /blobs/batch"] >= 8  # 62 MiB in requests of at most 8 MiB
    assert not [k for k in seen if "/uploads" in k]  # no file went alone
    assert up <= 0.05 * len(files), seen

    seen = _use(app, monkeypatch, tmp_path / "cache2")  # nothing cached
    with cairn.init(project="p") as run:
        got = run.use_artifact("images:latest").download(str(tmp_path / "out"))
    assert sum(seen.values()) <= 0.05 * len(files), seen
    assert seen["GET /blobs/<digest>"] <= 1  # the manifest; no file came alone
    if app.backend.transfers.s3 is not None:  # presigned GETs straight from S3
        # One request of URLs per 48 MiB written into place (the files are held in memory).
        assert 1 <= seen["POST /blobs/urls"] <= 2 and seen["POST /blobs/fetch"] == 0
    else:
        assert seen["POST /blobs/urls"] == 1 and seen["POST /blobs/fetch"] >= 4
    for name, data in files.items():
        assert (pathlib.Path(got) / name).read_bytes() == data
    cache = DownloadCache(str(tmp_path / "cache2"))  # filled on the way: every file's blob
    assert all(cache.lookup(digest_bytes(data)) is not None for data in files.values())

    seen.clear()  # the same cache again: every blob comes from it, none from the server
    with cairn.init(project="p") as run:
        again = run.use_artifact("images:latest").download(str(tmp_path / "out2"))
    assert not [k for k in seen if k.startswith("POST /blobs/")], seen
    for name, data in files.items():
        assert (pathlib.Path(again) / name).read_bytes() == data


_WRITE = re.compile(r'\s*(?:INSERT\b.*?\bINTO|UPDATE|DELETE\s+FROM)\s+"?(\w+)', re.I | re.S)


@contextlib.contextmanager
def _writes(app: InProcessServer) -> Iterator[list[set[str]]]:
    """Per catalog transaction committed meanwhile that wrote anything, the tables it wrote."""
    from sqlalchemy import event

    engine = app.backend.catalog.engine
    open_tx: dict[int, set[str]] = {}
    done: list[set[str]] = []
    lock = threading.Lock()

    def on_execute(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        found = _WRITE.match(statement)
        if found:
            with lock:
                open_tx.setdefault(id(conn), set()).add(found.group(1))

    def on_commit(conn: Any) -> None:
        with lock:
            tables = open_tx.pop(id(conn), None)
            if tables:
                done.append(tables)

    # New rows (an S3 store's index rows, the key's uploads) go by COPY on PostgreSQL, on the
    # DBAPI cursor (no SQLAlchemy statement event): counted where it is made, in its transaction.
    from cairn.catalog import Tx

    copy_new = Tx.copy_new

    def counted_copy(tx: Tx, table: Any, *args: Any) -> None:
        with lock:
            open_tx.setdefault(id(tx.conn), set()).add(table.name)
        copy_new(tx, table, *args)

    event.listen(engine, "before_cursor_execute", on_execute)
    event.listen(engine, "commit", on_commit)
    Tx.copy_new = counted_copy  # type: ignore[method-assign]
    try:
        yield done
    finally:
        Tx.copy_new = copy_new  # type: ignore[method-assign]
        event.remove(engine, "before_cursor_execute", on_execute)
        event.remove(engine, "commit", on_commit)


def test_a_batch_of_blobs_is_recorded_in_one_catalog_transaction(
    app: InProcessServer, tmp_path: pathlib.Path
) -> None:
    """~6 MiB of image-sized blobs (one request, stored in two groups) and some small ones: the
    catalog's part (an S3 store's index rows, the key's uploads) is one transaction."""
    svc = app.service(app.create_key("batcher"), str(tmp_path / "c"))
    rng = random.Random(1410)
    blobs = [rng.randbytes(150 << 10) for _ in range(40)] + [rng.randbytes(900) for _ in range(50)]
    items = [(digest_bytes(b), b) for b in blobs]
    seen: Counter[str] = Counter()
    _counter(svc, seen)
    with _writes(app) as writes:
        svc.store_blobs(items)
    assert seen["POST /blobs/batch"] == 1
    assert writes == [{"blob_uploads", "blobs"} if app.backend.transfers.s3 else {"blob_uploads"}]
    assert svc.missing_blobs([d for d, _ in items]) == []
    for d, b in items[::7]:
        assert app.backend.blobs.get(d) == b
    svc.close()


def test_a_blob_in_two_writes_under_way_is_sent_and_recorded_once(
    inprocess: InProcess, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two identical 4 KiB files 20 MiB apart in one log through a server on PostgreSQL: each in
    another of the stager's buffers, their writes under way at once (the first one's batch held
    until the second has asked which blobs are missing, so both find the blob missing). The
    second write leaves it out: the key's uploads go by ``COPY`` alone, no savepoint rolled back
    and no fallback insert (before: the second ``COPY`` failed, an ERROR line in PostgreSQL's
    log), and every row is kept."""
    from sqlalchemy import event, text

    app = inprocess("postgres", "local")
    reset_database(app.db)
    rng = random.Random(1415)
    same = rng.randbytes(4096)
    files = {"a.bin": same, **{f"b{i}.bin": rng.randbytes(4 * MiB) for i in range(5)}}
    files |= {"c.bin": same, "d.bin": rng.randbytes(4096)}  # c: 20 MiB after a
    for name, data in files.items():
        (tmp_path / "ds" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "ds" / name).write_bytes(data)
    asked: list[str] = []
    both_asked = threading.Event()

    def hold(svc: HttpService) -> None:
        def on_request(request: httpx.Request) -> None:
            if request.url.path.endswith("/blobs/batch"):
                assert both_asked.wait(30)

        def on_response(response: httpx.Response) -> None:
            if response.request.url.path.endswith("/blobs/missing"):
                asked.append(response.request.url.path)
                if len(asked) == 2:
                    both_asked.set()

        svc._client.api.event_hooks["request"].append(on_request)
        svc._client.api.event_hooks["response"].append(on_response)

    use_in_process(app, monkeypatch, str(tmp_path / "cache"), hold)
    fallbacks: list[str] = []

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "blob_uploads" in statement and statement.lstrip().upper().startswith("INSERT"):
            fallbacks.append(statement)

    def on_rollback_savepoint(*_: Any) -> None:
        fallbacks.append("ROLLBACK TO SAVEPOINT")

    engine = app.backend.catalog.engine
    event.listen(engine, "before_cursor_execute", on_execute)
    event.listen(engine, "rollback_savepoint", on_rollback_savepoint)
    try:
        with cairn.init(project="p") as run:
            art = cairn.Artifact("twice", "dataset")
            art.add_dir(str(tmp_path / "ds"))
            run.log_artifact(art)
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
        event.remove(engine, "rollback_savepoint", on_rollback_savepoint)
    assert len(asked) >= 2  # both writes asked before either sent
    assert fallbacks == []
    with engine.connect() as conn:
        recorded = {str(r[0]) for r in conn.execute(text("SELECT digest FROM blob_uploads"))}
    assert {digest_bytes(data) for data in files.values()} <= recorded
    entries = art.manifest.entries
    assert entries["c.bin"].digest == entries["a.bin"].digest == digest_bytes(same)


def test_a_damaged_blob_is_refused_on_the_way_down(
    app: InProcessServer, tmp_path: pathlib.Path
) -> None:
    key = app.create_key("me")
    svc = app.service(key, str(tmp_path / "c1"))
    good = [os.urandom(150 << 10) for _ in range(3)]
    svc.store_blobs([(digest_bytes(b), b) for b in good])
    bad = digest_bytes(good[1])
    s3 = app.backend.transfers.s3
    if s3 is not None:  # other bytes under the blob's key, as a damaged disk would leave
        s3.client.put_object(Bucket=s3.bucket, Key=s3.key_of(bad), Body=b"rot" + good[1][3:])
    else:
        path = app.backend.blobs.path_of(bad)  # type: ignore[attr-defined]
        os.chmod(path, 0o644)
        with open(path, "r+b") as f:
            f.write(b"rot")
    reader = app.service(key, str(tmp_path / "c2"))
    reader.prefetch_blobs([digest_bytes(b) for b in good])  # the damaged one is left out
    assert reader._cache.lookup(bad) is None  # nothing damaged is cached
    for b in (good[0], good[2]):
        assert reader._cache.lookup(digest_bytes(b)) is not None
        reader.download_blob(digest_bytes(b), str(tmp_path / "ok"))
        assert (tmp_path / "ok").read_bytes() == b
    with pytest.raises(DigestMismatchError):
        reader.download_blob(bad, str(tmp_path / "bad"))
    assert not (tmp_path / "bad").exists()
    assert reader._cache.lookup(bad) is None
    app.backend.blobs.delete_many([bad])  # leave no damaged blob to the tests that share the store
    svc.close()
    reader.close()


@pytest.fixture(params=["local", "s3"])
def parts_app(
    request: pytest.FixtureRequest, tmp_path: pathlib.Path, s3: S3Server
) -> Iterator[InProcessServer]:
    """A server in this process that takes files in parts of 5 MiB (S3: from 20 MiB)."""
    if request.param == "s3":
        server = InProcessServer(
            str(tmp_path / "cat.sqlite"), s3.url(f"parts-{os.getpid()}"), s3.env, part_size=5 * MiB
        )
    else:
        server = InProcessServer(
            str(tmp_path / "cat.sqlite"), str(tmp_path / "blobs"), part_size=5 * MiB
        )
    yield server
    server.stop()


def test_large_file_in_parts_restarts_an_upload_the_server_lost(
    parts_app: InProcessServer, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(23 * MiB)  # 5 parts
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    svc = parts_app.service(parts_app.create_key("me"), str(tmp_path / "cache"), transfer_threads=3)
    seen: Counter[str] = Counter()
    _counter(svc, seen)
    swept: list[int] = []
    lock = threading.Lock()

    def lose_it(request: httpx.Request) -> None:
        # The first part on its way: the server sweeps every upload (as it does abandoned ones).
        with lock:
            path = request.url.path
            if ("/parts/" in path or path.endswith("/content")) and not swept:
                swept.append(parts_app.backend.transfers.sweep(0))

    svc._client.api.event_hooks["request"].append(lose_it)
    info = svc.store_file(str(src))
    assert info.digest == digest_bytes(data) and swept == [1]
    # Begun again after the server lost it (on S3 the first begun before its digest; a local
    # store refuses that first, and the client hashes first).
    assert seen["POST /uploads"] == (2 if parts_app.backend.transfers.s3 else 3)
    assert svc.missing_blobs([info.digest]) == []
    if parts_app.backend.transfers.s3 is not None:
        s3 = parts_app.backend.transfers.s3
        listed = s3.client.list_multipart_uploads(Bucket=s3.bucket, Prefix=s3.prefix)
        assert not listed.get("Uploads")  # the swept one was aborted, the other completed
        # Streamed through the server, which verified it on the way: no part by URL.
        assert seen["PUT /uploads/content"] == 2 and not [k for k in seen if "parts" in k]
    else:
        assert seen["PUT /uploads/parts/"] >= 5
    reader = parts_app.service(parts_app.create_key("me2", "*/*", "write"), str(tmp_path / "c2"))
    svc.commit(
        CommitRequest(
            entity="me",
            project="p",
            name="big",
            type="model",
            changes=[("big.bin", ManifestEntry("big.bin", info.digest, info.size))],
        )
    )
    liar = digest_bytes(b"not the content of big.bin")
    with pytest.raises(DigestMismatchError):
        svc.store_blob_file(str(src), liar, len(data))  # parts accepted, the whole refused
    assert svc.missing_blobs([liar]) == [liar]
    if parts_app.backend.transfers.s3 is not None:  # nothing left under the blob's key
        assert parts_app.backend.transfers.s3.size(liar) is None
    got: Counter[str] = Counter()
    _counter(reader, got)
    monkeypatch.setattr("cairn.service._http_download.RANGE_PART", 4 * MiB)
    reader.download_blob(info.digest, str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == data
    assert got["GET /blobs/<digest>"] == 6  # in ranges of 4 MiB
    svc.close()
    reader.close()


UPLOADER = """
import os, sys, time
from cairn.service._http import HttpService
from cairn.storage import hash_file
svc = HttpService(sys.argv[1], sys.argv[2], sys.argv[3], transfer_threads=1)
path = sys.argv[4]
digest, size = hash_file(path)
fd = os.open(path, os.O_RDONLY)
def read(off, n):
    time.sleep(0.2)  # a slow disk (1 s a part): the test kills this client mid-upload
    return os.pread(fd, n, off)
svc._uploads.upload(digest, size, read, path)
print("done")
"""


@pytest.fixture(scope="module")
def parts_server(
    postgres: Postgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CairnServer]:
    """A real server process on PostgreSQL and a directory, taking parts of 5 MiB."""
    server = CairnServer(
        postgres.create_database("cairn_parts"),
        str(tmp_path_factory.mktemp("parts-blobs")),
        {"CAIRN_SERVER_PART_SIZE": str(5 * MiB)},
    )
    yield server
    server.stop()


def _parts_kept(server: CairnServer) -> int:
    spool = os.path.join(server.store, "tmp", "uploads")
    return sum(
        len(os.listdir(os.path.join(spool, d))) for d in os.listdir(spool) if d.endswith(".parts")
    )


@pytest.mark.slow  # long: dealt out first (tests/conftest.py)
def test_upload_resumes_after_a_killed_client_and_a_killed_server(
    parts_server: CairnServer, tmp_path: pathlib.Path
) -> None:
    reset_database(parts_server.db)
    key = parts_server.create_key("me")
    data = os.urandom(40 * MiB)  # 8 parts
    src = tmp_path / "ckpt.bin"
    src.write_bytes(data)
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(UPLOADER),
            parts_server.url,
            key,
            str(tmp_path / "cc"),
            str(src),
        ],
        stdout=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while _parts_kept(parts_server) < 2 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)  # the client dies mid-upload
    child.wait(30)
    kept = _parts_kept(parts_server)
    assert 2 <= kept < 8
    parts_server.kill()  # and so does the server
    parts_server.start()
    svc = HttpService(parts_server.url, key, str(tmp_path / "cache"))
    seen: Counter[str] = Counter()
    _counter(svc, seen)
    info = svc.store_file(str(src))
    assert info.digest == digest_bytes(data)
    assert seen["PUT /uploads/parts/"] == 8 - kept  # only the parts the server did not keep
    # Two begins: the first before the digest, which a server on a local store refuses
    # (the client then hashes first, and asks that server no more).
    assert seen["POST /uploads"] == 2 and seen["POST /uploads/complete"] == 1
    assert svc._uploads.unnamed is False
    svc.download_blob(info.digest, str(tmp_path / "back"))
    assert (tmp_path / "back").read_bytes() == data
    assert _parts_kept(parts_server) == 0  # spool cleaned up on completion
    svc.close()


@pytest.fixture(scope="module")
def stream_server(postgres: Postgres, s3: S3Server) -> Iterator[CairnServer]:
    """A real server process on PostgreSQL and S3 (moto), streaming uploads in 5 MiB parts."""
    server = CairnServer(
        postgres.create_database("cairn_stream"),
        s3.url("stream"),
        {**s3.env, "CAIRN_SERVER_PART_SIZE": str(5 * MiB)},
    )
    yield server
    server.stop()


STUCK_UPLOADER = """
import sys, time
import cairn.service._http_upload as up
from cairn.service._http import HttpService
svc = HttpService(sys.argv[1], sys.argv[2], sys.argv[3])
read_chunks = up._read_chunks
def stuck(read, off, n):
    for chunk in read_chunks(read, off, n):
        off += len(chunk)
        if off > 16 << 20:
            time.sleep(600)  # a disk that hangs after three parts: the test kills this client
        yield chunk
up._read_chunks = stuck
svc.store_file(sys.argv[4])  # sent while hashed, named once hashed
print("done")
"""


def _recorded(server: CairnServer, upload_id: str | None = None) -> int:
    """Parts a streaming server recorded as stored (rows of the catalog's ``upload_parts``)."""
    return _recorded_rows(server.db, upload_id)


def _recorded_rows(db: str, upload_id: str | None = None) -> int:
    import psycopg

    with psycopg.connect(db, autocommit=True) as conn:
        if upload_id is None:
            row = conn.execute("SELECT count(*) FROM upload_parts").fetchone()
        else:
            row = conn.execute(
                "SELECT count(*) FROM upload_parts WHERE upload_id = %s", (upload_id,)
            ).fetchone()
    assert row is not None
    return int(row[0])


def _objects(s3: S3Server, prefix: str) -> list[str]:
    client = s3.client()
    try:
        listed = client.list_objects_v2(Bucket=s3.bucket, Prefix=prefix)
        return [str(o["Key"]) for o in listed.get("Contents", [])]
    finally:
        client.close()


def _s3_parts_of(s3: S3Server, digest: str) -> int:
    client = s3.client()
    try:
        uploads = client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", [])
        ours = [u for u in uploads if str(u["Key"]).endswith(digest.split(":")[1][2:])]
        return sum(
            len(
                client.list_parts(Bucket=s3.bucket, Key=u["Key"], UploadId=u["UploadId"]).get(
                    "Parts", []
                )
            )
            for u in ours
        )
    finally:
        client.close()


@pytest.mark.slow  # long: dealt out first (tests/conftest.py)
def test_streamed_s3_upload_resumes_after_a_killed_client_and_a_killed_server(
    stream_server: CairnServer, s3: S3Server, tmp_path: pathlib.Path
) -> None:
    """An S3 store takes a large file in one request that the server verifies as it arrives and
    stores in parts (sent while the client hashes it, named by a second request). Client and
    server killed mid-upload: the resumed upload, begun before its digest again, is told to
    resume the earlier one once named and sends the object store only the parts it did not
    keep, and nothing is left behind. The server records each part in the catalog, never as an object of
    its own in the bucket."""
    key = stream_server.create_key("me")
    data = os.urandom(30 * MiB)  # 6 parts
    d = digest_bytes(data)
    src = tmp_path / "ckpt.bin"
    src.write_bytes(data)
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(STUCK_UPLOADER),
            stream_server.url,
            key,
            str(tmp_path / "cc"),
            str(src),
        ],
        stdout=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while _recorded(stream_server) < 2 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)  # the client dies mid-upload
    child.wait(30)
    stream_server.kill()  # and so does the server
    kept = _recorded(stream_server)
    while kept != (kept := _recorded(stream_server)):  # a request that arrived whole is answered
        time.sleep(0.3)
    assert 2 <= kept <= 3  # the client's disk hung after three parts
    assert _objects(s3, "stream/uploads/") == []  # no marker objects (one PUT per part before)
    stream_server.start()
    import psycopg

    # The killed server never said the stream ended: as LIVE_FOR seconds later (a live stream's
    # upload is never taken up).
    with psycopg.connect(stream_server.db, autocommit=True) as conn:
        conn.execute("UPDATE uploads SET active_at = NULL")
    svc = HttpService(stream_server.url, key, str(tmp_path / "cache"))
    answers: list[dict[str, Any]] = []

    def content_answers(response: httpx.Response) -> None:
        if response.request.url.path.endswith("/content") and response.status_code == 200:
            response.read()
            answers.append(response.json())

    svc._client.api.event_hooks["response"].append(content_answers)
    # Begun unnamed again (a new process knows nothing), its parts sent at once to a key of its
    # own; once named, the server answers ``resume``: sent again named, the earlier upload is
    # taken up and only the parts S3 did not keep are sent.
    assert svc.store_file(str(src)).digest == d
    assert answers == [{"digest": d, "size": len(data), "parts_sent": 6 - kept, "parts_kept": kept}]
    assert svc.missing_blobs([d]) == []
    assert _recorded(stream_server) == 0  # and its parts' records removed
    svc.download_blob(d, str(tmp_path / "back"))
    assert (tmp_path / "back").read_bytes() == data
    # Other content under a digest: refused at the end of the stream, nothing kept or stored.
    liar = digest_bytes(data + b"!")
    with pytest.raises(DigestMismatchError):
        svc._uploads.upload(liar, len(data), lambda off, n: data[off : off + n], None)
    assert _s3_parts_of(s3, liar) == 0 and svc.missing_blobs([liar]) == [liar]
    client = s3.client()
    listed = client.list_objects_v2(Bucket=s3.bucket, Prefix="stream/")
    assert not [o for o in listed.get("Contents", []) if o["Key"].endswith(liar[9:])]
    client.close()
    svc.close()


def test_a_streamed_upload_asks_s3_only_for_the_upload_and_its_parts(
    inprocess: InProcess, tmp_path: pathlib.Path
) -> None:
    """A large file streamed to an S3 store costs the object store one request per part and
    three more (begin, complete, the digest's tag on its own key): each part's record goes to
    the catalog. Before, each part also cost a marker object (a PUT), and the upload two
    listings of its parts, two of its markers and a delete of the markers (134 requests for
    512 MiB where 67 do now)."""
    app = inprocess("postgres", "s3")
    reset_database(app.db)
    s3 = app.backend.transfers.s3
    assert s3 is not None
    calls: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    data = os.urandom(12 * MiB)  # two parts: 8 MiB and 4 MiB
    src = tmp_path / "ckpt.bin"
    src.write_bytes(data)
    svc = app.service(app.create_key("me", "*/*", "write"), str(tmp_path / "cache"))
    s3.client.meta.events.register("before-call.s3", count)
    try:
        info = svc.store_file(str(src))
    finally:
        s3.client.meta.events.unregister("before-call.s3", count)
    assert info.digest == digest_bytes(data) and svc.missing_blobs([info.digest]) == []
    assert calls == Counter(  # (and the tag naming the blob of an object at its own key)
        {
            "CreateMultipartUpload": 1,
            "UploadPart": 2,
            "CompleteMultipartUpload": 1,
            "PutObjectTagging": 1,
        }
    )
    assert _recorded_rows(app.db) == 0  # the upload's records went with it
    svc.close()


def _s3_app(inprocess: InProcess) -> InProcessServer:
    app = inprocess("postgres", "s3")
    reset_database(app.db)
    return app


def _held(app: InProcessServer, user: str, size: int) -> dict[str, Any]:
    """An upload begun before its digest as a server before the fifteenth session began it
    (its parts held until named, their key the blob's): a row such a server left, taken up
    by this one."""
    from cairn.server._upload_parts import UNNAMED_REF, Upload

    t = app.backend.transfers
    up = Upload(os.urandom(16).hex(), user, "", size, t.stream_part_size(size), UNNAMED_REF)
    t.rows.insert(up)
    return t.describe(up, new=True)


def test_a_large_file_leaves_before_its_hash_pass_ends(
    inprocess: InProcess, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """To a server on S3 a large file is sent while the client hashes it: the upload is begun
    with its size alone, its content streams at once, and a second request names the digest
    when the hash is done (no presence check before: the naming answers it). Pinned by order,
    not time: the hash here waits until a whole part has gone (before, the file was hashed,
    then its presence asked, then the upload begun and sent)."""
    from cairn.service import _http_naming as nm
    from cairn.service import _http_upload as up

    app = _s3_app(inprocess)
    data = os.urandom(20 * MiB)
    src = tmp_path / "ckpt.bin"
    src.write_bytes(data)
    svc = app.service(app.create_key("me", "*/*", "write"), str(tmp_path / "cache"))
    seen: Counter[str] = Counter()
    _counter(svc, seen)
    sent = 0
    a_part_went = threading.Event()
    hashed_after: list[int] = []
    read_chunks, hash_fd = up._read_chunks, nm._hash_fd

    def sending(read: Any, off: int, length: int) -> Iterator[bytes]:
        nonlocal sent
        for chunk in read_chunks(read, off, length):
            yield chunk
            sent += len(chunk)
            if sent >= 8 * MiB:
                a_part_went.set()

    def hashing(fd: int, stop: threading.Event) -> tuple[str, int] | None:
        a_part_went.wait(60)  # a guard only: the stream must not wait for the hash
        out = hash_fd(fd, stop)
        hashed_after.append(sent)
        return out

    monkeypatch.setattr(up, "_read_chunks", sending)
    monkeypatch.setattr(nm, "_hash_fd", hashing)
    info = svc.store_file(str(src))
    assert info.digest == digest_bytes(data) and info.size == len(data)
    assert hashed_after and hashed_after[0] >= 8 * MiB  # a whole part had left by then
    assert seen == Counter({"POST /uploads": 1, "PUT /uploads/content": 1, "POST /uploads/name": 1})
    assert svc.missing_blobs([info.digest]) == [] and app.backend.transfers.rows.ids() == set()
    svc.close()


def test_a_blob_the_key_has_stops_the_stream_once_named(
    inprocess: InProcess, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large file whose blob the key has already (another path, same content): the naming
    answers ``stored``, the client stops sending, and the server ends the stream without one
    request to S3 (nothing was begun there before the name)."""
    from cairn.service import _http_naming as nm
    from cairn.service import _http_upload as up

    app = _s3_app(inprocess)
    s3 = app.backend.transfers.s3
    assert s3 is not None
    data = os.urandom(20 * MiB)
    for name in ("a.bin", "b.bin"):
        (tmp_path / name).write_bytes(data)
    svc = app.service(app.create_key("me", "*/*", "write"), str(tmp_path / "cache"))
    until_stopped = nm.Naming.until_stopped
    sent: list[int] = []

    def after_the_name(naming: Any, chunks: Iterator[bytes]) -> Iterator[bytes]:
        # The first chunk, then (deterministically) the naming's answer, then the rest.
        it = iter(chunks)
        yield next(it)
        naming.join()
        for chunk in until_stopped(naming, it):
            sent.append(len(chunk))
            yield chunk

    monkeypatch.setattr(nm.Naming, "until_stopped", after_the_name)
    first = svc.store_file(str(tmp_path / "a.bin"))
    assert sum(sent) == len(data) - up.CHUNK
    calls: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    sent.clear()
    s3.client.meta.events.register("before-call.s3", count)
    try:
        again = svc.store_file(str(tmp_path / "b.bin"))
    finally:
        s3.client.meta.events.unregister("before-call.s3", count)
    assert again == first and sent == []  # stopped after the first chunk
    # Its parts went to S3 at once, at a key of its own: that multipart upload is aborted
    # (before, nothing was asked of S3 before the name).
    assert calls == Counter({"CreateMultipartUpload": 1, "AbortMultipartUpload": 1})
    assert not s3.client.list_multipart_uploads(Bucket=s3.bucket, Prefix=s3.prefix).get("Uploads")
    assert app.backend.transfers.rows.ids() == set()  # the upload's row went with the answer
    svc.close()


def test_content_named_with_another_digest_is_refused(
    inprocess: InProcess, tmp_path: pathlib.Path
) -> None:
    """The server hashes what it receives and completes only content whose SHA-256 is the
    name: another digest (a client that lies, or a file that changed) is refused, its S3
    upload aborted, nothing recorded or left under the named blob's key."""
    app = _s3_app(inprocess)
    s3 = app.backend.transfers.s3
    assert s3 is not None
    svc = app.service(app.create_key("me", "*/*", "write"), str(tmp_path / "cache"))
    data = os.urandom(12 * MiB)
    liar = digest_bytes(data + b"!")
    plan = svc._call("POST", "/uploads", json={"size": len(data), "modes": ["stream"]})
    assert plan["mode"] == "stream" and plan["unnamed"] is True
    refused: list[Exception] = []

    def put() -> None:
        try:
            svc._call("PUT", f"/uploads/{plan['id']}/content", content=data)
        except DigestMismatchError as exc:
            refused.append(exc)

    sending = threading.Thread(target=put)
    sending.start()
    named = svc._call("POST", f"/uploads/{plan['id']}/name", json={"digest": liar})
    sending.join()
    assert named == {"stored": False} and len(refused) == 1
    assert svc.missing_blobs([liar]) == [liar] and s3.size(liar) is None
    assert not s3.client.list_multipart_uploads(Bucket=s3.bucket, Prefix=s3.prefix).get("Uploads")
    assert app.backend.transfers.rows.ids() == set()
    svc.close()


def test_the_stream_waits_for_the_name_once_two_parts_are_sent() -> None:
    """The client sends ``lead`` bytes (two parts) before the name, then waits for it: the
    server holds those parts and sends none to S3 before the name, and a stream sent on
    meanwhile took the CPU the hash needs (under load the name, and the first part to S3,
    came 0.2-0.4 s later than after a hash pass alone)."""
    from cairn.service import _http_naming as nm

    naming = nm.Naming(None, "/uploads/u", -1, 12, lead=8)  # type: ignore[arg-type]
    chunks = naming.until_stopped(iter([b"abcd", b"efgh", b"ijkl"]))
    assert next(chunks) + next(chunks) == b"abcdefgh"
    got: list[bytes] = []
    third = threading.Thread(target=lambda: got.extend(chunks))
    third.start()
    third.join(0.1)
    assert third.is_alive() and got == []  # waiting for the name
    naming._over.set()  # named (or the naming failed: the stream learns which)
    third.join()
    assert got == [b"ijkl"]


def test_a_naming_that_loses_the_race_keeps_the_winners_upload(
    inprocess: InProcess, tmp_path: pathlib.Path
) -> None:
    """Two requests name one upload at once (a naming retried after a timeout, perhaps on the
    other server process): the one that loses aborts only the S3 multipart upload it made and
    answers as the other did; the winner's row and its multipart upload stay, and the content
    completes (review M1: the loser forgot the winner's row, its multipart upload leaked)."""
    app = _s3_app(inprocess)
    t = app.backend.transfers
    s3 = t.s3
    assert s3 is not None and t.streamed is not None
    user = "key:review"
    data = os.urandom(12 * MiB)
    d = digest_bytes(data)
    plan = _held(app, user, len(data))
    real = t.multipart
    first: list[str] = []

    def racing(digest: str, stream: bool) -> str:
        ref = real(digest, stream)  # the other request names the upload meanwhile
        first.append(ref)
        assert t.rows.name(plan["id"], digest, ref)
        return real(digest, stream)

    t.multipart = racing  # type: ignore[method-assign]
    try:
        assert t.streamed.name(user, plan["id"], d, stored=False) == {"stored": False}
    finally:
        del t.multipart
    row = t.rows.get(plan["id"])
    assert row is not None and row.ref == first[0]  # the winner's upload is kept
    listed = s3.client.list_multipart_uploads(Bucket=s3.bucket, Prefix=s3.prefix)
    assert [u["UploadId"] for u in listed.get("Uploads", [])] == [first[0].split("\n")[1]]

    async def content() -> AsyncIterator[bytes]:
        yield data

    sink = t.open_stream(user, plan["id"])
    answer = run_coroutine(receive_stream(sink, content()))
    assert answer == {"digest": d, "size": len(data), "parts_sent": 2, "parts_kept": 0}


def test_a_naming_in_the_same_process_wakes_its_waiting_stream(
    inprocess: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream waiting for its name looks at the upload's row now and then (across server
    processes they meet only there); a naming in the same process wakes it at once instead
    (the looks' backoff cost up to 0.1 s before the first part left for S3). Here the clock
    would bring the next look in an hour: the naming brings it (the old code waited)."""
    from cairn.server import _stream_upload

    monkeypatch.setattr(_stream_upload, "NAME_POLL", 3600.0)
    app = _s3_app(inprocess)
    t = app.backend.transfers
    assert t.streamed is not None
    streamed = t.streamed
    user = "key:wake"
    data = os.urandom(12 * MiB)
    d = digest_bytes(data)
    plan = _held(app, user, len(data))
    looks: list[object] = []
    look = streamed._named_target

    def counted(*args: Any) -> Any:
        looks.append(look(*args))
        return looks[-1]

    monkeypatch.setattr(streamed, "_named_target", counted)

    async def content() -> AsyncIterator[bytes]:
        yield data

    async def run() -> dict[str, Any]:
        sink = t.open_stream(user, plan["id"])
        sending = asyncio.ensure_future(receive_stream(sink, content()))
        while not looks:  # the first look found no name
            await asyncio.sleep(0.005)
        await asyncio.to_thread(streamed.name, user, plan["id"], d, stored=False)
        return await asyncio.wait_for(sending, 30)  # a bound on a hang

    answer = run_coroutine(run())
    assert answer == {"digest": d, "size": len(data), "parts_sent": 2, "parts_kept": 0}
    assert looks[0] is None and len(looks) == 2
    assert t.s3 is not None and t.s3.size(d) == len(data) and t.rows.ids() == set()


def test_the_hash_starts_before_the_upload_is_begun(
    inprocess: InProcess, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client hashes a large file from before it asks the server to begin its upload (the
    name, and so the first part to S3, waits for the hash): pinned by order, the begin here
    waits for the hash to end (the old code began the upload, then hashed)."""
    from cairn.service import _http_naming as nm

    app = _s3_app(inprocess)
    streamed = app.backend.transfers.streamed
    assert streamed is not None
    data = os.urandom(12 * MiB)
    (tmp_path / "ckpt.bin").write_bytes(data)
    svc = app.service(app.create_key("me", "*/*", "write"), str(tmp_path / "cache"))
    hashed = threading.Event()
    hashed_first: list[bool] = []
    hash_fd, begin = nm._hash_fd, streamed.begin_unnamed

    def hashing(fd: int, stop: threading.Event) -> tuple[str, int] | None:
        out = hash_fd(fd, stop)
        hashed.set()
        return out

    def begin_after_the_hash(*args: Any) -> dict[str, Any]:
        hashed_first.append(hashed.wait(10))  # a bound: the old code hashed after this
        return begin(*args)

    monkeypatch.setattr(nm, "_hash_fd", hashing)
    monkeypatch.setattr(streamed, "begin_unnamed", begin_after_the_hash)
    seen: Counter[str] = Counter()
    _counter(svc, seen)
    info = svc.store_file(str(tmp_path / "ckpt.bin"))
    assert info.digest == digest_bytes(data) and hashed_first == [True]
    assert seen == Counter({"POST /uploads": 1, "PUT /uploads/content": 1, "POST /uploads/name": 1})
    svc.close()


def test_a_failed_stream_does_not_wait_for_the_whole_hash(
    inprocess: InProcess, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stream of a file begun before its digest fails (Ctrl-C, a server error): the hash
    stops at its next chunk instead of reading the whole file for a name nobody wants (review
    S3: the caller waited for the whole hash pass, minutes for a large file on a slow disk)."""
    from cairn.service import _http_naming as nm
    from cairn.service import _http_upload as up
    from cairn.storage import _hashing

    app = _s3_app(inprocess)
    (tmp_path / "big.bin").write_bytes(os.urandom(20 * MiB))
    svc = app.service(app.create_key("me", "*/*", "write"), str(tmp_path / "cache"))
    abandoned = threading.Event()
    updates: list[int] = []
    abandon, hasher = nm.Naming.abandon, _hashing.new_hasher

    class Slow:  # a hash slower than the failure: its first chunk waits for it
        def __init__(self) -> None:
            self._inner = hasher()

        def update(self, data: Any) -> None:
            abandoned.wait(30)  # a guard only
            updates.append(len(data))
            self._inner.update(data)

        def digest(self) -> bytes:
            return self._inner.digest()

    def on_abandon(naming: Any) -> None:
        abandon(naming)
        abandoned.set()

    def failing(read: Any, off: int, n: int) -> Iterator[bytes]:
        raise RuntimeError("the disk went away")
        yield b""

    monkeypatch.setattr(nm.Naming, "abandon", on_abandon)
    monkeypatch.setattr(_hashing, "new_hasher", Slow)  # the client's hash: hash_stream's
    monkeypatch.setattr(up, "_read_chunks", failing)
    failed = raised_within(lambda: svc.store_file(str(tmp_path / "big.bin")))
    assert isinstance(failed, RuntimeError)
    assert len(updates) <= 1  # of 20 chunks: stopped at the next one
    svc.close()


def test_a_server_process_holds_few_unnamed_uploads(
    inprocess: InProcess, tmp_path: pathlib.Path
) -> None:
    """Each stream of an upload whose parts wait for its name (begun by a server before the
    fifteenth session) holds up to nine part buffers: a server process holds ``MAX_WAITING``
    of them; beyond, such a stream is refused as a conflict (409; review S2: any key with the
    upload grant could pin 72 MiB per request it never named). An upload whose parts go to
    S3 at once (a key of its own) holds none and is not counted: the client's next file still
    goes while hashed. A begin larger than a client sends unnamed is refused (S2b: 5 TiB
    would hold 9 parts of 525 MiB)."""
    from cairn.server._transfers_streamed import MAX_WAITING
    from cairn.service import UNNAMED_UP_TO

    app = _s3_app(inprocess)
    t = app.backend.transfers
    user = "key:cap"
    with pytest.raises(ValidationError):
        t.begin(user, None, UNNAMED_UP_TO + 1, ["stream"])
    ids = [_held(app, user, 9 * MiB)["id"] for _ in range(MAX_WAITING + 1)]
    sinks = [t.open_stream(user, i) for i in ids[:MAX_WAITING]]
    with pytest.raises(ConflictError):
        t.open_stream(user, ids[-1])
    data = os.urandom(9 * MiB)
    (tmp_path / "f.bin").write_bytes(data)
    svc = app.service(app.create_key("me", "*/*", "write"), str(tmp_path / "cache"))
    assert svc.store_file(str(tmp_path / "f.bin")).digest == digest_bytes(data)
    assert svc._uploads.unnamed is True  # sent while hashed: not counted
    sinks[0].released()  # one named, or its stream ended: room for another
    sinks.append(t.open_stream(user, ids[-1]))
    for sink in sinks[1:]:
        sink.released()
    svc.close()


class _OlderServer(httpx.BaseTransport):
    """A server from before uploads begun without their digest: ``POST /uploads`` with no
    digest is answered as its request validation did (400)."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/api/v1/uploads") and b'"digest"' not in request.read():
            message = "bad request: body.digest: Field required"
            body = {"error": {"type": "ValidationError", "message": message}}
            return httpx.Response(400, json=body, request=request)
        return self._inner.handle_request(request)


def test_an_older_server_gets_the_digest_first(
    inprocess: InProcess, tmp_path: pathlib.Path
) -> None:
    """A server that wants the digest to begin an upload refuses the first begin without it;
    the client then hashes first (presence, begin, stream), and asks that server no more."""
    app = _s3_app(inprocess)
    key = app.create_key("me", "*/*", "write")
    svc = HttpService(app.url, key, str(tmp_path / "cache"), transport=_OlderServer(app.transport))
    seen: Counter[str] = Counter()
    _counter(svc, seen)
    infos = []
    for name in ("a.bin", "b.bin"):
        data = os.urandom(9 * MiB)
        (tmp_path / name).write_bytes(data)
        infos.append(svc.store_file(str(tmp_path / name)))
        assert infos[-1].digest == digest_bytes(data)
    assert seen == Counter(
        {"POST /uploads": 3, "POST /blobs/missing": 2, "PUT /uploads/content": 2}
    )
    assert svc._uploads.unnamed is False
    assert svc.missing_blobs([i.digest for i in infos]) == []
    svc.close()


def test_a_streamed_part_is_kept_only_where_all_before_it_matches(
    stream_server: CairnServer, s3: S3Server, tmp_path: pathlib.Path
) -> None:
    """A part S3 kept from an interrupted attempt is reused only when every byte up to its end
    is what is sent now (the server's record of a part is the SHA-256 of the blob up to its
    end): an attempt whose second part differed leaves its first part reusable, not its third,
    even though the third part's own bytes are the same."""
    key = stream_server.create_key("me")
    data = os.urandom(30 * MiB)  # 6 parts of 5 MiB
    d = digest_bytes(data)
    other = bytearray(data)
    other[7 * MiB] ^= 1  # in the second part
    svc = HttpService(stream_server.url, key, str(tmp_path / "cache"))
    plan = svc._call("POST", "/uploads", json={"digest": d, "size": len(data), "modes": ["stream"]})

    def cut_short() -> Iterator[bytes]:  # three whole parts and a little, then the client fails
        for start in range(0, 16 * MiB, MiB):
            yield bytes(other[start : start + MiB])
        raise OSError("the client's disk failed")

    with pytest.raises(OSError):
        httpx.put(
            f"{stream_server.url}/api/v1/uploads/{plan['id']}/content",
            content=cut_short(),
            headers={"Authorization": f"Bearer {key}", "Content-Length": str(len(data))},
            timeout=60,
        )
    deadline = time.monotonic() + 60
    while _recorded(stream_server, plan["id"]) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)  # the parts on their way when the request ended still land
    assert _recorded(stream_server, plan["id"]) == 3
    again = svc._call(
        "POST", "/uploads", json={"digest": d, "size": len(data), "modes": ["stream"]}
    )
    assert again["id"] == plan["id"] and again["parts_done"] == [0, 1, 2]
    answer = svc._call("PUT", f"/uploads/{plan['id']}/content", content=data)
    assert answer == {"digest": d, "size": len(data), "parts_sent": 5, "parts_kept": 1}
    svc.download_blob(d, str(tmp_path / "back"))
    assert (tmp_path / "back").read_bytes() == data
    svc.close()


def _an_older_servers_stream(
    server: CairnServer, tmp_path: pathlib.Path
) -> tuple[HttpService, bytes, str, dict[str, Any]]:
    """A client, 10 MiB, its digest and an upload of it begun as an older server would have
    (its row's ref ``stream-crc32``: part records as S3 marker objects)."""
    import psycopg

    data = os.urandom(10 * MiB)
    d = digest_bytes(data)
    svc = HttpService(server.url, server.create_key("me"), str(tmp_path / "cache"))
    plan = svc._call("POST", "/uploads", json={"digest": d, "size": len(data), "modes": ["stream"]})
    with psycopg.connect(server.db, autocommit=True) as conn:
        conn.execute(
            "UPDATE uploads SET backend_ref = replace(backend_ref, 'stream-parts', 'stream-crc32')"
            " WHERE id = %s",
            (plan["id"],),
        )
    return svc, data, d, plan


def test_an_older_servers_streamed_upload_is_begun_again(
    stream_server: CairnServer, s3: S3Server, tmp_path: pathlib.Path
) -> None:
    """An upload an older server streamed (its row ends in ``stream``: parts checked by their
    SHA-256; or ``stream-crc32``: its part records kept as marker objects in S3) is not taken up
    by this one (parts recorded in the catalog): it is aborted, with its S3 multipart upload and
    its markers, and a new upload begun."""
    svc, data, d, plan = _an_older_servers_stream(stream_server, tmp_path)
    marker = f"stream/uploads/{plan['id']}/parts/1.{'0' * 64}.{'0' * 8}.{'0' * 32}"
    client = s3.client()
    client.put_object(Bucket=s3.bucket, Key=marker)
    client.close()
    again = svc._call(
        "POST", "/uploads", json={"digest": d, "size": len(data), "modes": ["stream"]}
    )
    assert again["id"] != plan["id"] and again["mode"] == "stream"
    client = s3.client()
    uploads = client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", [])
    client.close()
    assert len([u for u in uploads if str(u["Key"]).endswith(d.split(":")[1][2:])]) == 1
    assert _objects(s3, f"stream/uploads/{plan['id']}/") == []  # the older server's marker
    answer = svc._call("PUT", f"/uploads/{again['id']}/content", content=data)
    assert answer["parts_sent"] == 2 and svc.missing_blobs([d]) == []
    svc.close()


def test_content_sent_to_an_older_servers_streamed_upload_begins_it_again(
    stream_server: CairnServer, s3: S3Server, tmp_path: pathlib.Path
) -> None:
    """A client that began its upload with an older server (part records as S3 markers) and
    sends the content to this one after a restart is told the upload is gone: the S3 upload is
    aborted and its markers dropped, not left behind under parts completed the new way (review
    of 836eccd: the markers stayed, and a ``stream`` upload took CRC32-checked parts)."""
    from cairn.errors import NotFoundError

    svc, data, d, plan = _an_older_servers_stream(stream_server, tmp_path)
    client = s3.client()
    client.put_object(Bucket=s3.bucket, Key=f"stream/uploads/{plan['id']}/parts/1.x")
    client.close()
    with pytest.raises(NotFoundError, match="begin again"):
        svc._call("PUT", f"/uploads/{plan['id']}/content", content=data)
    assert _objects(s3, f"stream/uploads/{plan['id']}/") == []
    again = svc._call(
        "POST", "/uploads", json={"digest": d, "size": len(data), "modes": ["stream"]}
    )
    assert again["id"] != plan["id"]
    assert svc._call("PUT", f"/uploads/{again['id']}/content", content=data)["parts_sent"] == 2
    assert svc.missing_blobs([d]) == []
    svc.close()


def test_an_older_servers_stream_is_known_by_its_ref() -> None:
    """One rule says which uploads an older server streamed (``Upload.older_stream``): taking
    one up, sending content to one and aborting one all ask it (written out three times
    before, review)."""
    from cairn.catalog import UploadRow
    from cairn.server._upload_parts import upload_of

    d = "sha256:" + "ab" * 32
    for ref, streamed, older in [
        ("k\nid\nstream-parts", True, False),  # this server's
        ("k\nid\nstream", True, True),  # older servers'
        ("k\nid\nstream-crc32", True, True),
        ("k\nid", False, False),  # presigned parts
        ("spool", False, False),  # a local store's
    ]:
        up = upload_of(UploadRow("u", "key:k", d, 30 << 20, 8 << 20, ref))
        assert (up.streamed, up.older_stream) == (streamed, older), ref


def test_a_part_still_arriving_refuses_complete_and_never_writes_into_the_stored_blob(
    inprocess: InProcess, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A part's writer (held by ``PUT .../parts/{n}`` while its body arrives: a descriptor on
    the spool file) could write after ``complete`` had verified the file and moved it into the
    store, changing a blob every key then dedups against (review of session 15, P1). Now
    ``complete`` refuses at once (503, no thread held: the body's pace is the client's) while a
    part is still arriving; the client's retry, once the part has ended, hashes what it wrote:
    here a slow second body of part 0 with other bytes, refused as a mismatch, nothing stored.
    Fails on the old code: complete went ahead, and the late bytes landed in the stored blob."""
    app = inprocess("sqlite", "local")
    reset_database(app.db)
    transfers = app.backend.transfers
    svc = app.service(app.create_key("mallory"), str(tmp_path / "cache"))
    data = os.urandom(300 << 10)
    d = digest_bytes(data)
    refused = threading.Event()  # a complete found a part's writer holding the spool file
    flock = fcntl.flock

    def noted_flock(fd: int, op: int) -> None:
        try:
            flock(fd, op)
        except BlockingIOError:
            refused.set()
            raise

    monkeypatch.setattr(fcntl, "flock", noted_flock)
    pool, slow = ThreadPoolExecutor(2), None
    try:
        plan = svc._call("POST", "/uploads", json={"digest": d, "size": len(data)})
        upload_id, part_size = plan["id"], plan["part_size"]
        for n in range(-(-len(data) // part_size)):
            body = data[n * part_size : (n + 1) * part_size]
            svc._call("PUT", f"/uploads/{upload_id}/parts/{n}", content=body)
        owner = transfers.rows.get(upload_id).owner
        slow = transfers.open_part(owner, upload_id, 0)  # a second body of part 0, arriving
        with pytest.raises(UnavailableError):
            pool.submit(transfers.complete, owner, upload_id).result(30)  # at once, not waiting
        refused.clear()
        completing = pool.submit(svc._call, "POST", f"/uploads/{upload_id}/complete")
        while not (refused.wait(0.01) or completing.done()):
            pass  # the client's first complete is refused (503); it retries
        slow.write(b"\0" * 4096)  # the rest of the slow body arrives now
        with pytest.raises(ValidationError):
            slow.close()  # short: refused, but its bytes are in the spool file
        slow = None
        with pytest.raises(DigestMismatchError):
            completing.result(60)
        path = transfers.blobs.local_path(d)
        assert path is None or digest_bytes(pathlib.Path(path).read_bytes()) == d
        assert not transfers.blobs.has_many([d])
    finally:
        if slow is not None:
            slow.abort()  # a complete that waits for it (a regression) can end
        pool.shutdown(wait=True)
        svc.close()


def test_a_part_opened_before_a_complete_and_locked_after_it_is_refused(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other order: a part's writer opened the spool file, then ``complete`` locked, stored
    and released it before the writer's shared lock was granted. The path no longer names the
    file the writer holds: refused (the route answers 404), nothing written."""
    from cairn.server import _upload_parts

    spool = tmp_path / "u.partial"
    spool.write_bytes(b"x" * 10)
    flock = _upload_parts.fcntl.flock

    def completed_meanwhile(fd: int, op: int) -> None:
        os.rename(spool, tmp_path / "stored")  # what complete's take_file does
        flock(fd, op)

    monkeypatch.setattr(_upload_parts.fcntl, "flock", completed_meanwhile)
    with pytest.raises(FileNotFoundError):
        _upload_parts.open_for_part(str(spool))
    assert (tmp_path / "stored").read_bytes() == b"x" * 10


def test_a_completed_upload_is_fsynced_while_it_is_hashed_and_stored_once_durable(
    inprocess: InProcess, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A local-disk server completing an upload in parts fsyncs the spool file while it hashes
    it (the disk and a core at once: for 1 GiB ~0.7 s of fsync came after ~0.55 s of hash), and
    moves it into the store only once that fsync has returned. Pinned by order: the hash waits
    for the fsync to begin (the old code hashed, then fsynced: the guard ran out), and the fsync
    returns only after the hash has ended, so the store's ``take_file`` must wait for it."""
    from cairn.server import _transfers

    app = inprocess("sqlite", "local")
    reset_database(app.db)
    transfers = app.backend.transfers
    svc = app.service(app.create_key("me"), str(tmp_path / "cache"))
    data = os.urandom(300 << 10)  # over the small-blob limit: an upload in parts
    (tmp_path / "f.bin").write_bytes(data)
    flushing, hashed = threading.Event(), threading.Event()
    waited: list[bool] = []
    order: list[str] = []
    fsync, hash_stream, take_file = os.fsync, _transfers.hash_stream, transfers.blobs.take_file

    def held_fsync(fd: int) -> None:
        if not os.readlink(f"/proc/self/fd/{fd}").startswith(os.path.realpath(transfers.spool)):
            fsync(fd)  # the store's own (its directories)
            return
        flushing.set()
        hashed.wait(10)  # the spool file's fsync ends after the hash
        fsync(fd)
        order.append("fsynced")

    def hash_after_the_fsync_began(f: Any) -> tuple[str, int]:
        waited.append(flushing.wait(10))  # a guard only: the old code fsynced after this
        try:
            return hash_stream(f)
        finally:
            order.append("hashed")
            hashed.set()

    def noted_take_file(path: str, digest: str) -> Any:
        order.append("taken")
        return take_file(path, digest)

    monkeypatch.setattr(_transfers.os, "fsync", held_fsync)
    monkeypatch.setattr(_transfers, "hash_stream", hash_after_the_fsync_began)
    monkeypatch.setattr(transfers.blobs, "take_file", noted_take_file)
    try:
        svc.store_blob_file(str(tmp_path / "f.bin"), digest_bytes(data), len(data))
        assert waited == [True] and order == ["hashed", "fsynced", "taken"]
        assert svc.read_blob(digest_bytes(data)) == data
    finally:
        svc.close()
