"""A large blob streamed to a server on S3 before its digest goes to S3 at a key of its own
(``<prefix>streamed/<upload id>``) as its parts arrive, while the client hashes it; the catalog's
index row names that key (``blobs.object_key``, migration 0015) and every read goes through it.
See docs/design.md ("Transfers", "Blobs on S3: small ones in the catalog")."""

from __future__ import annotations

import os
import pathlib
import threading
import time
from collections import Counter
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from cairn.catalog import _schema as s
from cairn.core import digest_bytes
from cairn.errors import BlobNotFoundError
from cairn.server._transfers import ObjectStore
from cairn.service._http import HttpService
from cairn.storage import S3BlobStore
from tests._infra import InProcessServer, reset_database, run_coroutine
from tests.conftest import InProcess

MiB = 1 << 20


def _app(inprocess: InProcess) -> InProcessServer:
    """The in-process server on S3, its catalog empty and nothing under ``streamed/``."""
    app = inprocess("postgres", "s3")
    reset_database(app.db)
    s3 = _store(app).s3
    s3.delete_keys(_streamed(s3))
    for key, s3_id, _ in list(s3.streamed_multiparts()):
        s3.client.abort_multipart_upload(Bucket=s3.bucket, Key=key, UploadId=s3_id)
    return app


def _store(app: InProcessServer) -> ObjectStore:
    store = app.backend.transfers.object_store
    assert store is not None
    return store


def _key_of(app: InProcessServer, digest: str) -> str | None:
    b = s.blobs.c
    q = select(b.object_key).where(b.digest == digest)
    return app.backend.catalog.read(lambda tx: tx.conn.execute(q).scalar_one())  # type: ignore[no-any-return]


def _streamed(s3: S3BlobStore) -> list[str]:
    return [k for k, _ in s3.streamed_objects()]


def _open_multiparts(s3: S3BlobStore) -> list[Any]:
    return list(
        s3.client.list_multipart_uploads(Bucket=s3.bucket, Prefix=s3.prefix).get("Uploads", [])
    )


def _service(app: InProcessServer, tmp_path: pathlib.Path) -> HttpService:
    return app.service(app.create_key("me", "*/*", "write"), str(tmp_path / "cache"))


def test_the_first_part_reaches_s3_before_the_hash_ends(
    inprocess: InProcess, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pinned by order, not time: the client's hash of the file starts only once a part is
    on its way to S3 (before, no part could go before the name: its key was the blob's, so
    the hash here would wait for ever; bounded at 20 s). The blob then lives at its upload's
    key, tagged with its digest, and its index row names that key."""
    from cairn.service import _http_naming as nm

    app = _app(inprocess)
    s3 = _store(app).s3
    data = os.urandom(20 * MiB)
    src = tmp_path / "ckpt.bin"
    src.write_bytes(data)
    svc = _service(app, tmp_path)
    a_part_at_s3 = threading.Event()
    order: list[str] = []
    hash_fd = nm._hash_fd

    def part(**_: Any) -> None:
        a_part_at_s3.set()

    def hashing(fd: int, stop: threading.Event) -> tuple[str, int] | None:
        order.append("part first" if a_part_at_s3.wait(20) else "no part before the hash")
        return hash_fd(fd, stop)

    monkeypatch.setattr(nm, "_hash_fd", hashing)
    s3.client.meta.events.register("before-call.s3.UploadPart", part)
    try:
        info = svc.store_file(str(src))
    finally:
        s3.client.meta.events.unregister("before-call.s3.UploadPart", part)
    d = digest_bytes(data)
    assert order == ["part first"] and info.digest == d
    key = _key_of(app, d)
    assert key is not None and key.startswith("streamed/")  # (relative to the store's prefix)
    tags = s3.client.get_object_tagging(Bucket=s3.bucket, Key=s3.prefix + key)["TagSet"]
    assert tags == [{"Key": "cairn-sha256", "Value": d}]  # a bucket recoverable without us
    assert s3.size(d) is None  # nothing at the digest's own key
    assert svc.missing_blobs([d]) == [] and app.backend.transfers.rows.ids() == set()
    assert _open_multiparts(s3) == []
    svc.close()


def test_every_read_of_a_blob_at_its_own_key_goes_through_its_row(
    inprocess: InProcess, tmp_path: pathlib.Path
) -> None:
    """GET (whole and ranged, redirected to presigned GETs), presigned URLs, presence and
    size, many-blob reads, verify, and gc's delete: each finds the object at the key its row
    names."""
    app = _app(inprocess)
    store = _store(app)
    data = os.urandom(8 * MiB + 5)
    src = tmp_path / "ckpt.bin"
    src.write_bytes(data)
    svc = _service(app, tmp_path)
    d = svc.store_file(str(src)).digest
    key = _key_of(app, d)
    assert key is not None and store.s3.prefix + key in _streamed(store.s3)
    index = store.index
    assert index.get(d) == data and index.open(d).read() == data
    assert index.get_range(d, 5, 10) == data[5:15] and index.size(d) == len(data)
    assert index.has_many([d]) == {d} and index.local_path(d) is None
    index.copy_to(d, str(tmp_path / "copy"))
    assert (tmp_path / "copy").read_bytes() == data
    url = index.presigned_url(d, 3, 4)
    ranged = httpx.get(url or "", headers={"Range": "bytes=3-6"})  # (the range is signed)
    assert ranged.content == data[3:7]
    (got, size) = index.presigned_gets([d])[d]
    assert size == len(data) and httpx.get(got).content == data
    assert dict(index.get_many([d])) == {d: data}
    svc.download_blob(d, str(tmp_path / "back"))  # GET /blobs/{digest}: ranges, presigned
    assert (tmp_path / "back").read_bytes() == data
    assert dict(svc.read_blobs([d])) == {d: data}
    local = app.backend.service
    assert not local.verify().problems  # re-hashed through the row
    report = local.collect_garbage(grace_seconds=0)  # no version uses it: garbage
    assert report.removed_blobs >= 1
    assert _streamed(store.s3) == [] and index.size(d) is None
    with pytest.raises(BlobNotFoundError):
        index.get(d)
    svc.close()


def test_two_uploads_of_one_blob_racing_leave_one_object(
    inprocess: InProcess, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two uploads of the same content (two keys), each at a key of its own, both complete
    (the second did not see the first's row when it looked): one index row wins, the other's
    object is deleted; the blob reads the winner's. (With the look, the second is aborted
    before it completes.)"""
    app = _app(inprocess)
    store = _store(app)
    data = os.urandom(9 * MiB)
    src = tmp_path / "ckpt.bin"
    src.write_bytes(data)
    d = digest_bytes(data)
    first = _service(app, tmp_path)
    assert first.store_file(str(src)).digest == d
    winner = _key_of(app, d)
    other = app.service(app.create_key("other", "*/*", "write"), str(tmp_path / "cache2"))
    assert other.missing_blobs([d]) == [d]  # not its to use: it uploads it too
    monkeypatch.setattr(store.index, "size", lambda digest: None)  # the look misses it
    plan = other._call("POST", "/uploads", json={"size": len(data), "modes": ["stream"]})
    assert plan["keyfree"] is True
    answer: dict[str, Any] = {}
    path = f"/uploads/{plan['id']}"
    sending = threading.Thread(
        target=lambda: answer.update(other._call("PUT", f"{path}/content", content=data))
    )
    sending.start()
    named = other._call("POST", f"{path}/name", json={"digest": d})
    sending.join()
    assert named == {"stored": False}
    assert answer["digest"] == d and answer["parts_sent"] == 2
    monkeypatch.undo()
    assert _key_of(app, d) == winner and _streamed(store.s3) == [store.s3.prefix + str(winner)]
    assert store.index.get(d) == data and other.missing_blobs([d]) == []
    first.close()
    other.close()


def test_the_sweep_removes_what_an_abandoned_upload_left_at_its_own_key(
    inprocess: InProcess,
) -> None:
    """An upload abandoned at a key of its own (its row outlives the complete until the blob
    is indexed): the sweep removes the object a server completed and did not index (killed
    between the two), keeps one an index row names, and aborts multipart uploads under
    ``streamed/`` no upload refers to (a server killed between beginning one and writing its
    row); the multipart upload of an upload under way stays. No listing of the stored blobs."""
    app = _app(inprocess)
    store = _store(app)
    s3, t = store.s3, app.backend.transfers
    assert t.streamed is not None
    user = "key:someone"
    lost, indexed = (t.begin(user, None, 9 * MiB, ["stream"]) for _ in range(2))
    for plan, body in ((lost, b"x" * 10), (indexed, os.urandom(1000))):
        row = t.rows.get(plan["id"])
        assert row is not None
        key, s3_id = row.ref.split("\n")[:2]
        s3.client.abort_multipart_upload(Bucket=s3.bucket, Key=key, UploadId=s3_id)
        s3.client.put_object(Bucket=s3.bucket, Key=key, Body=body)  # completed meanwhile
    kept = f"streamed/{indexed['id']}"
    assert store.index.record_keyed(digest_bytes(body), len(body), kept) == kept
    s3.client.create_multipart_upload(Bucket=s3.bucket, Key=s3.streamed_key("2" * 32))
    under_way = t.begin(user, None, 9 * MiB, ["stream"])
    assert t.streamed.sweep_orphans(time.time() + 60) == 1  # (all old) the one nobody's
    assert [u["Key"] for u in _open_multiparts(s3)] == [s3.streamed_key(under_way["id"])]
    calls: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    s3.client.meta.events.register("before-call.s3", count)
    try:
        assert t.sweep(-60.0) == 3  # now all three abandoned
    finally:
        s3.client.meta.events.unregister("before-call.s3", count)
    assert _streamed(s3) == [s3.prefix + kept] and store.index.get(digest_bytes(body)) == body
    assert _open_multiparts(s3) == [] and t.rows.ids() == set()
    assert calls["ListObjectsV2"] == 0


def _parts_by_upload(s3: S3BlobStore) -> tuple[list[tuple[str, int]], Any]:
    """A hook on the server's S3 client recording (S3 upload id, part number) of each part."""
    sent: list[tuple[str, int]] = []

    def part(params: dict[str, Any], **_: Any) -> None:
        sent.append((str(params["UploadId"]), int(params["PartNumber"])))

    s3.client.meta.events.register("provide-client-params.s3.UploadPart", part)
    return sent, part


def test_a_new_upload_of_a_blob_resumes_an_interrupted_one_once_named(
    inprocess: InProcess, tmp_path: pathlib.Path
) -> None:
    """A client killed mid-upload sends again from a new process, unnamed: once named, the
    server finds this key's interrupted upload of the blob (its stream gone, its parts kept
    by S3) and answers ``resume``: the new upload is dropped (its multipart upload aborted),
    the client sends the file named, which takes the earlier one up: S3 gets only the parts
    it did not keep."""
    from cairn.server._stream_upload import receive_stream

    app = _app(inprocess)
    t = app.backend.transfers
    s3 = _store(app).s3
    key = app.create_key("me", "*/*", "write")
    svc = app.service(key, str(tmp_path / "cache"))
    user = f"key:{key.split('_')[1]}"  # (cairn_<key id>_<secret>: the uploads' owner)
    data = os.urandom(30 * MiB)  # 4 parts of 8 MiB
    d = digest_bytes(data)
    src = tmp_path / "ckpt.bin"
    src.write_bytes(data)

    async def cut_off(sink: Any) -> None:
        async def chunks() -> Any:
            for start in range(0, 17 * MiB, MiB):
                yield data[start : start + MiB]
            raise ConnectionError("the client went away")

        with pytest.raises(ConnectionError):
            await receive_stream(sink, chunks())

    first = t.begin(user, None, len(data), ["stream"])
    assert t.name(user, first["id"], d, stored=False) == {"stored": False}
    run_coroutine(cut_off(t.open_stream(user, first["id"])))
    earlier = t.rows.get(first["id"])
    assert earlier is not None and earlier.active_at is None  # its stream ended
    assert len(t.rows.parts(first["id"])) == 2
    s3_id = earlier.ref.split("\n")[1]
    sent, hook = _parts_by_upload(s3)
    try:
        assert svc.store_file(str(src)).digest == d
    finally:
        s3.client.meta.events.unregister("provide-client-params.s3.UploadPart", hook)
    assert sorted(n for u, n in sent if u == s3_id) == [3, 4]  # only those S3 did not keep
    assert t.rows.ids() == set() and _open_multiparts(s3) == []
    assert _key_of(app, d) == f"streamed/{first['id']}" and _store(app).index.get(d) == data
    svc.close()


def test_two_live_streams_of_one_blob_never_share_a_multipart_upload(
    inprocess: InProcess, tmp_path: pathlib.Path
) -> None:
    """Two processes of one key send the same file at once (ranks logging one checkpoint):
    both succeed at their first attempt, and each part number of each S3 multipart upload is
    sent once, by one stream (a live stream's upload is never taken up by the other)."""
    app = _app(inprocess)
    s3 = _store(app).s3
    key = app.create_key("me", "*/*", "write")
    data = os.urandom(20 * MiB)
    paths = []
    for n in range(2):
        paths.append(tmp_path / f"rank{n}.bin")
        paths[-1].write_bytes(data)
    sent, hook = _parts_by_upload(s3)
    got: list[Any] = []

    def rank(n: int) -> None:
        svc = app.service(key, str(tmp_path / f"cache{n}"))
        try:
            got.append(svc.store_file(str(paths[n])).digest)
        finally:
            svc.close()

    try:
        ranks = [threading.Thread(target=rank, args=(n,)) for n in range(2)]
        for r in ranks:
            r.start()
        for r in ranks:
            r.join()
    finally:
        s3.client.meta.events.unregister("provide-client-params.s3.UploadPart", hook)
    assert got == [digest_bytes(data)] * 2
    assert len(sent) == len(set(sent))  # no part of any multipart upload sent twice
    assert app.backend.transfers.rows.ids() == set() and _open_multiparts(s3) == []


def test_a_store_without_object_tags_still_takes_the_upload(
    inprocess: InProcess, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tagging is best effort (GCS's S3 API and R2 have no object tagging): the blob is
    indexed at its key all the same."""
    app = _app(inprocess)
    s3 = _store(app).s3

    def no_tags(key: str, digest: str) -> None:
        raise NotImplementedError("this store keeps no object tags")

    monkeypatch.setattr(s3, "tag_digest", no_tags)
    data = os.urandom(9 * MiB)
    (tmp_path / "f.bin").write_bytes(data)
    svc = _service(app, tmp_path)
    d = svc.store_file(str(tmp_path / "f.bin")).digest
    assert _key_of(app, d) is not None and _store(app).index.get(d) == data
    svc.close()
