"""Nothing unreadable is ever committed (issue 12, item 2): numbers JSON cannot carry, sizes beyond
the catalog's integers, deep nesting; refused alike by the embedded store and a server, with the
field named, and nothing left behind."""

from __future__ import annotations

import math
import os
import pathlib

import httpx
import pytest

from cairn.core import ManifestEntry, build_tree, digest_bytes
from cairn.errors import ValidationError
from cairn.service import CommitRequest, Service
from cairn.service._http import HttpService
from cairn.storage import hash_file
from tests._infra import CairnServer


def _request(metadata: dict[str, object], sizes: tuple[int, ...] = (3,)) -> CommitRequest:
    data = b"abc"
    d = digest_bytes(data)
    return CommitRequest(
        entity="e",
        project="p",
        name="ds",
        type="dataset",
        changes=[(f"f{i}", ManifestEntry(f"f{i}", d, size)) for i, size in enumerate(sizes)],
        metadata=metadata,
    )


@pytest.mark.parametrize(
    ("metadata", "field"),
    [
        ({"loss": math.nan}, "metadata.loss"),
        ({"a": {"b": [1, math.inf]}}, "metadata.a.b[1]"),
        ({"big": 1 << 64}, "metadata.big"),
    ],
)
def test_numbers_json_cannot_carry_are_refused_naming_the_field(
    both: dict[str, Service], metadata: dict[str, object], field: str
) -> None:
    for where, svc in both.items():
        svc.store_blobs([(digest_bytes(b"abc"), b"abc")])
        with pytest.raises(ValidationError, match=field.replace("[", r"\[").replace("]", r"\]")):
            svc.commit(_request(metadata))
        assert svc.list_projects() == [], where


def test_raw_nan_and_overflowing_numbers_on_the_wire_are_a_400(
    server_local: CairnServer, both: dict[str, Service]
) -> None:
    server = both["server"]
    assert isinstance(server, HttpService)
    d = digest_bytes(b"abc")
    server.store_blobs([(d, b"abc")])
    headers = {
        "Authorization": server._client.api.headers["Authorization"],
        "Content-Type": "application/json",
    }
    url = f"{server_local.url}/api/v1/projects/e/p/commit"
    row = f'[["f", ["f", "{d}", 3]]]'
    for metadata in ('{"loss": NaN}', '{"loss": 1e999}', '{"loss": -Infinity}'):
        body = f'{{"name": "ds", "type": "dataset", "changes": {row}, "metadata": {metadata}}}'
        resp = httpx.post(url, content=body, headers=headers)
        assert resp.status_code == 400, resp.text
        assert "metadata.loss" in resp.json()["error"]["message"]
    assert server.list_projects() == []


def _pages_of(request: CommitRequest) -> list[str]:
    pages: dict[str, bytes] = {}
    build_tree((e for _, e in request.changes if e is not None), pages.__setitem__)
    return list(pages)


def test_sizes_beyond_the_catalogs_integers_leave_no_pages(both: dict[str, Service]) -> None:
    for where, svc in both.items():
        svc.store_blobs([(digest_bytes(b"abc"), b"abc")])
        for sizes in ((1 << 63,), (1 << 62, 1 << 62)):
            refused = _request({}, sizes)
            with pytest.raises(ValidationError, match="64 bits"):
                svc.commit(refused)
            pages = _pages_of(refused)
            assert pages and svc.missing_blobs(pages) == pages, where  # no orphan pages
        ok = svc.commit(_request({}, ((1 << 62) - 1,)))
        assert ok.version is not None and ok.version.size == (1 << 62) - 1, where
        assert svc.get_version(ok.version.id).size == (1 << 62) - 1


def test_deep_nesting_is_refused_not_a_crash(both: dict[str, Service]) -> None:
    deep: dict[str, object] = {}
    node = deep
    for _ in range(200):
        child: dict[str, object] = {}
        node["x"] = child
        node = child
    for svc in both.values():
        svc.store_blobs([(digest_bytes(b"abc"), b"abc")])
        with pytest.raises(ValidationError, match="nested"):
            svc.commit(_request(deep))


def test_a_file_truncated_between_hashing_and_upload_is_named(
    both: dict[str, Service], tmp_path: pathlib.Path
) -> None:
    server = both["server"]
    assert isinstance(server, HttpService)
    path = tmp_path / "ckpt.bin"
    path.write_bytes(os.urandom(600_000))
    digest, size = hash_file(str(path))
    with open(path, "r+b") as f:  # the training job rewrites it meanwhile
        f.truncate(100_000)
    with pytest.raises(ValidationError, match=r"ckpt\.bin changed while cairn was uploading"):
        server._uploads.upload_file(str(path), digest, size)
    path.write_bytes(os.urandom(600_000))  # same size, other content
    with pytest.raises(ValidationError, match="not what was hashed"):
        server._uploads.upload_file(str(path), digest, size)
    assert server.missing_blobs([digest]) == [digest]
