"""How bytes travel between HttpService and a real server: batched presence checks, batched
small blobs both ways, parts that resume, the download cache."""

from __future__ import annotations

import base64
import hashlib
import os
import pathlib
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from cairn.core import ManifestEntry, digest_bytes
from cairn.errors import DigestMismatchError
from cairn.service import CommitRequest
from cairn.service._http import HttpService
from tests._infra import ADMIN_KEY, CairnServer, Postgres, S3Server, reset_database


@pytest.fixture(params=["local", "s3"])
def server(request: pytest.FixtureRequest) -> CairnServer:
    srv: CairnServer = request.getfixturevalue(f"server_{request.param}")
    reset_database(srv.db)
    return srv


@pytest.fixture
def svc(server: CairnServer, tmp_path: pathlib.Path) -> Iterator[HttpService]:
    s = HttpService(server.url, server.create_key("me"), str(tmp_path / "cache"))
    yield s
    s.close()


def _count(svc: HttpService) -> Counter[str]:
    seen: Counter[str] = Counter()

    def hook(request: httpx.Request) -> None:
        path = request.url.path.split("/api/v1", 1)[-1]
        seen[f"{request.method} {path.rsplit('/', 1)[0] if '/parts/' in path else path}"] += 1

    svc._client.api.event_hooks["request"].append(hook)
    return seen


def test_small_blobs_travel_many_per_request_both_ways(
    svc: HttpService, tmp_path: pathlib.Path
) -> None:
    blobs = [os.urandom(4096) for _ in range(3000)]
    items = [(digest_bytes(b), b) for b in blobs]
    seen = _count(svc)
    svc.store_blobs(items)
    assert seen["POST /blobs/missing"] == 1
    assert 1 <= seen["POST /blobs/batch"] <= 4  # 12 MiB in 8 MiB requests
    svc.store_blobs(items)  # all present now: one question, nothing sent
    assert seen["POST /blobs/missing"] == 2 and seen["POST /blobs/batch"] <= 4
    changes = sorted(
        (f"f{i:04}", ManifestEntry(f"f{i:04}", d, 4096)) for i, (d, _) in enumerate(items)
    )
    done = svc.commit(
        CommitRequest(entity="me", project="p", name="many", type="dataset", changes=changes)
    )
    assert done.version is not None and done.version.file_count == 3000
    fresh = HttpService(
        svc.base_url, svc._client.api.headers["Authorization"][7:], str(tmp_path / "c2")
    )
    seen2 = _count(fresh)
    fresh.prefetch_blobs([d for d, _ in items])
    assert seen2["POST /blobs/fetch"] == 4 and seen2["GET /blobs"] == 0  # one per thread
    for d, b in items[:50]:
        dest = tmp_path / "out"
        fresh.download_blob(d, str(dest))  # from the cache, verified
        assert dest.read_bytes() == b
    assert not any(k.startswith("GET /blobs/") for k in seen2)
    hexd = items[0][0][7:]
    cached = tmp_path / "c2" / "blobs" / "sha256" / hexd[:2] / hexd[2:]
    assert cached.read_bytes() == blobs[0]
    fresh.close()


def test_a_damaged_cache_entry_is_fetched_again(svc: HttpService, tmp_path: pathlib.Path) -> None:
    data = os.urandom(300_000)
    d = digest_bytes(data)
    svc.store_blobs([(d, data)])
    dest = tmp_path / "x"
    svc.download_blob(d, str(dest))
    cached = pathlib.Path(svc._cache.path_of(d))
    cached.write_bytes(bytes([data[0] ^ 0xFF]) + data[1:])  # the first byte flipped
    svc.download_blob(d, str(dest))
    assert dest.read_bytes() == data and cached.read_bytes() == data


def test_parts_resume_where_they_stopped(server_local: CairnServer, tmp_path: pathlib.Path) -> None:
    server = server_local
    reset_database(server.db)
    svc = HttpService(server.url, server.create_key("me"), str(tmp_path / "cache"))
    assert not svc._whoami()["presigned_uploads"]  # a local store takes large blobs in parts
    part = svc._whoami()["part_size"]
    data = os.urandom(part * 2 + 1000)
    d = digest_bytes(data)
    plan = svc._call("POST", "/uploads", json={"digest": d, "size": len(data)})
    svc._call("PUT", f"/uploads/{plan['id']}/parts/1", content=data[part : 2 * part])
    status = svc._call("GET", f"/uploads/{plan['id']}")
    assert status["parts_done"] == [1]
    seen = _count(svc)
    svc._uploads._put_parts(status, len(data), lambda off, n: data[off : off + n])
    assert seen[f"PUT /uploads/{plan['id']}/parts"] == 2  # parts 0 and 2, not 1 again
    svc._call("POST", f"/uploads/{plan['id']}/complete")
    assert svc.missing_blobs([d]) == []
    dest = tmp_path / "back"
    svc.download_blob(d, str(dest))
    assert dest.read_bytes() == data
    svc.close()


@pytest.fixture(scope="module")
def server_s3_parts(postgres: Postgres, s3: S3Server) -> Iterator[CairnServer]:
    """S3 store, 5 MiB parts (S3's smallest), so blobs from 20 MiB go in presigned parts."""
    db = postgres.create_database("s3_parts")
    srv = CairnServer(db, s3.url("parts"), {**s3.env, "CAIRN_SERVER_PART_SIZE": str(5 << 20)})
    yield srv
    srv.stop()


@pytest.mark.slow  # long: dealt out first (tests/conftest.py)
def test_s3_parts_go_presigned_and_resume(
    server_s3_parts: CairnServer, tmp_path: pathlib.Path
) -> None:
    svc = HttpService(server_s3_parts.url, server_s3_parts.create_key("me"), str(tmp_path / "c"))
    part = svc._whoami()["part_size"]
    data = os.urandom(part * 4 + 12345)
    d = digest_bytes(data)
    plan = svc._call("POST", "/uploads", json={"digest": d, "size": len(data)})
    assert plan["mode"] == "presigned-parts" and plan["parts_done"] == []
    # One part arrives, then the client "dies"; the upload resumes from what S3 kept.
    chunk = data[part : 2 * part]
    checksum = base64.b64encode(hashlib.sha256(chunk).digest()).decode()
    target = svc._call("POST", f"/uploads/{plan['id']}/parts/1/url", json={"checksum": checksum})
    assert "Signature" in target["url"] or "X-Amz-Signature" in target["url"]
    httpx.put(target["url"], content=chunk, headers=target["headers"]).raise_for_status()
    status = svc._call("GET", f"/uploads/{plan['id']}")
    assert status["parts_done"] == [1]
    seen = _count(svc)
    svc._uploads._put_parts(status, len(data), lambda off, n: data[off : off + n])
    asked = sorted(k for k in seen if k.startswith(f"POST /uploads/{plan['id']}/parts/"))
    assert [k.rsplit("/", 1)[1] for k in asked] == ["0", "2", "3", "4"]  # not 1 again
    svc._call("POST", f"/uploads/{plan['id']}/complete")
    assert svc.missing_blobs([d]) == []
    dest = tmp_path / "back"
    svc.download_blob(d, str(dest))  # a presigned GET, followed without the API key
    assert dest.read_bytes() == data
    # Parts whose whole does not match the digest never become a blob.
    wrong = digest_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))  # the last byte flipped
    with pytest.raises(DigestMismatchError):
        svc._uploads.upload(wrong, len(data), lambda off, n: data[off : off + n], None)
    assert svc.missing_blobs([wrong]) == [wrong]
    svc.close()


def test_an_abandoned_s3_multipart_upload_is_aborted_and_leaves_nothing_visible(
    server_s3_parts: CairnServer, s3: S3Server, tmp_path: pathlib.Path
) -> None:
    """The S3 abort path of the sweep: a client began a multipart upload, sent a part and went
    away; once the upload is older than CAIRN_SERVER_UPLOAD_MAX_AGE, the sweep (here through
    `POST /admin/gc`) aborts it in S3 (moto): no multipart upload, no part, no object, no
    blob, and the upload is gone for the client."""
    import psycopg

    srv = server_s3_parts
    svc = HttpService(srv.url, srv.create_key("quitter"), str(tmp_path / "c"), retries=0)
    part = svc._whoami()["part_size"]
    data = os.urandom(part * 4 + 1)
    d = digest_bytes(data)
    plan = svc._call("POST", "/uploads", json={"digest": d, "size": len(data)})
    assert plan["mode"] == "presigned-parts"
    chunk = data[:part]
    checksum = base64.b64encode(hashlib.sha256(chunk).digest()).decode()
    target = svc._call("POST", f"/uploads/{plan['id']}/parts/0/url", json={"checksum": checksum})
    httpx.put(target["url"], content=chunk, headers=target["headers"]).raise_for_status()
    client = s3.client()

    def ours() -> list[dict[str, object]]:
        uploads = client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", [])
        # At the blob's own key (sha256/ab/<rest>): no staging key to copy from afterwards.
        return [u for u in uploads if str(u["Key"]).endswith(d.split(":")[1][2:])]

    (begun,) = ours()
    assert (
        len(
            client.list_parts(Bucket=s3.bucket, Key=begun["Key"], UploadId=begun["UploadId"])[
                "Parts"
            ]
        )
        == 1
    )
    # A young upload is not abandoned: the sweep leaves it alone.
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    gc = httpx.post(f"{srv.url}/api/v1/admin/gc", json={"grace_seconds": 86400}, headers=admin)
    assert gc.status_code == 200 and len(ours()) == 1
    with psycopg.connect(srv.db, autocommit=True) as db:  # the client went away two days ago
        db.execute(
            "UPDATE uploads SET created_at = created_at - 172800 WHERE id = %s", (plan["id"],)
        )
    gc = httpx.post(f"{srv.url}/api/v1/admin/gc", json={"grace_seconds": 86400}, headers=admin)
    assert gc.status_code == 200 and gc.json()["abandoned_uploads_removed"] >= 1
    assert ours() == []
    with pytest.raises(client.exceptions.NoSuchUpload):
        client.list_parts(Bucket=s3.bucket, Key=begun["Key"], UploadId=begun["UploadId"])
    listed = client.list_objects_v2(Bucket=s3.bucket, Prefix=str(begun["Key"]))
    assert listed.get("KeyCount", 0) == 0  # no object was ever assembled
    assert svc.missing_blobs([d]) == [d]
    gone = httpx.get(f"{srv.url}/api/v1/uploads/{plan['id']}", headers=svc._client.api.headers)
    assert gone.status_code == 404
    client.close()
    svc.close()
