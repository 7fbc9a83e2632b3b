"""HTTP Range requests on the blob route: 206 with only the bytes asked for, 416 past the end,
the whole blob for ranges it does not serve, presigned ranged GETs on S3, and the same read
grant as a whole download."""

from __future__ import annotations

import os
import pathlib

import httpx
import pytest

from cairn.core import ManifestEntry, digest_bytes
from cairn.errors import BlobNotFoundError
from cairn.service import CommitRequest
from cairn.service._http import HttpService
from cairn.service._wire import parse_range
from tests._infra import CairnServer, reset_database

SMALL = os.urandom(5000)
LARGE = os.urandom(400_000)


@pytest.fixture(params=["local", "s3"])
def server(request: pytest.FixtureRequest) -> CairnServer:
    srv: CairnServer = request.getfixturevalue(f"server_{request.param}")
    reset_database(srv.db)
    return srv


def _log(server: CairnServer, key: str, tmp_path: pathlib.Path) -> None:
    svc = HttpService(server.url, key, str(tmp_path / "cache"), retries=0)
    svc.store_blobs([(digest_bytes(SMALL), SMALL)])
    src = tmp_path / "large.bin"
    src.write_bytes(LARGE)
    svc.store_file(str(src))
    entries = [ManifestEntry(p, digest_bytes(b), len(b)) for p, b in (("l", LARGE), ("s", SMALL))]
    request = CommitRequest("alice", "p", "ds", "dataset", [(e.path, e) for e in entries])
    assert svc.commit(request).version is not None
    svc.close()


def _get(server: CairnServer, key: str, digest: str, byte_range: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}", "Range": byte_range}
    resp = httpx.get(f"{server.url}/api/v1/blobs/{digest}", headers=headers, timeout=30)
    if resp.status_code == 307:  # S3: a presigned GET of that range (no API key sent there)
        resp = httpx.get(resp.headers["location"], headers={"Range": byte_range}, timeout=30)
    return resp


def test_ranges_are_answered_with_206(server: CairnServer, tmp_path: pathlib.Path) -> None:
    key = server.create_key("alice")
    _log(server, key, tmp_path)
    for data in (SMALL, LARGE):
        d = digest_bytes(data)
        resp = _get(server, key, d, "bytes=100-199")
        assert resp.status_code == 206 and resp.content == data[100:200]
        assert resp.headers["content-range"] == f"bytes 100-199/{len(data)}"
        resp = _get(server, key, d, "bytes=-10")
        assert resp.status_code == 206 and resp.content == data[-10:]
        resp = _get(server, key, d, f"bytes={len(data) - 5}-")
        assert resp.status_code == 206 and resp.content == data[-5:]
        assert _get(server, key, d, f"bytes={len(data)}-").status_code == 416
    # Several ranges (or none understood): the whole blob, as HTTP allows.
    resp = _get(server, key, digest_bytes(SMALL), "bytes=0-1,5-6")
    assert resp.status_code == 200 and resp.content == SMALL


def test_a_range_needs_the_same_read_grant(server: CairnServer, tmp_path: pathlib.Path) -> None:
    _log(server, server.create_key("alice"), tmp_path)
    stranger = server.create_key("mallory", "mallory/own", "write")
    for data in (SMALL, LARGE):
        resp = _get(server, stranger, digest_bytes(data), "bytes=0-9")
        assert resp.status_code == 404 and data[:10] not in resp.content
    svc = HttpService(server.url, stranger, str(tmp_path / "m"), retries=0)
    with pytest.raises(BlobNotFoundError):
        svc.read_blob_range(digest_bytes(LARGE), 0, 10)
    svc.close()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-9", (0, 10)),
        ("bytes=5-", (5, 95)),
        ("bytes=-10", (90, 10)),
        ("bytes=-500", (0, 100)),
        ("bytes=90-500", (90, 10)),
        ("bytes=100-", (100, 0)),
        ("bytes=0-1,3-4", None),
        ("items=0-9", None),
        ("bytes=9-2", None),
        ("bytes=-0", None),
        ("bytes=x-y", None),
        ("bytes=", None),
    ],
)
def test_parse_range(header: str, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, 100) == expected
