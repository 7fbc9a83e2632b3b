"""Issue 14, image-shaped downloads from a server on S3: the first presigned URLs are asked for a
few blobs (so the first GETs go at once) and the rest while those come; the GETs go over
``http.client``, never through httpx and never with the API key; every blob is verified before
its file is written, and a damaged one stops the download with nothing written outside the
target (or the cache) and nothing damaged cached."""

from __future__ import annotations

import json
import os
import pathlib
import random
import threading
from collections import Counter
from typing import Any

import httpx
import pytest

import cairn
from cairn.core import digest_bytes
from cairn.errors import DigestMismatchError
from cairn.sdk import current_service
from cairn.service import DownloadCache, _http_download
from tests._infra import InProcessServer, reset_database, use_in_process
from tests.conftest import InProcess


@pytest.fixture
def app(inprocess: InProcess) -> InProcessServer:
    server = inprocess("sqlite", "s3")
    reset_database(server.db)
    return server


class _Seen:
    """The digests of each ``POST /blobs/urls`` and the requests through httpx's ``plain``."""

    def __init__(self) -> None:
        self.url_asks: list[int] = []
        self.plain: list[str] = []


def _use(
    app: InProcessServer, monkeypatch: pytest.MonkeyPatch, cache: pathlib.Path, seen: _Seen
) -> None:
    def wrap(svc: Any) -> None:
        def api(request: httpx.Request) -> None:
            if request.url.path.endswith("/blobs/urls"):
                seen.url_asks.append(len(json.loads(request.read())["digests"]))

        svc._client.api.event_hooks["request"].append(api)
        svc._client.plain.event_hooks["request"].append(lambda r: seen.plain.append(str(r.url)))

    use_in_process(app, monkeypatch, str(cache), wrap)


def _log(root: pathlib.Path, count: int, seed: int) -> dict[str, bytes]:
    """``count`` files just above the small-blob limit (kept in S3, fetched by presigned GET),
    logged as ``images:latest``."""
    rng = random.Random(seed)
    files = {f"c{i % 3}/img{i:04}.jpg": rng.randbytes(129 << 10) for i in range(count)}
    _logged(root, files, "images")
    return files


def _logged(root: pathlib.Path, files: dict[str, bytes], name: str = "small") -> None:
    """``files`` written under ``root`` and logged as ``name:latest``."""
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    with cairn.init(project="p") as run:
        art = cairn.Artifact(name, "dataset")
        art.add_dir(str(root))
        run.log_artifact(art)


def _tree(root: pathlib.Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_urls_are_asked_a_few_first_and_objects_come_without_httpx(
    app: InProcessServer, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = 8  # URL_FIRST's role with a tenth of the bytes
    monkeypatch.setattr(_http_download, "URL_FIRST", first)
    seen = _Seen()
    _use(app, monkeypatch, tmp_path / "c1", seen)
    files = _log(tmp_path / "images", first + 4, seed=1413)
    _use(app, monkeypatch, tmp_path / "c2", seen)  # nothing cached
    with cairn.init(project="p") as run:
        got = pathlib.Path(run.use_artifact("images:latest").download(str(tmp_path / "out")))
    # One request of URLs for the first blobs (their GETs start while the server signs the
    # rest), one for the rest: not one for every blob of the version at once.
    assert seen.url_asks == [first, len(files) - first]
    assert seen.plain == []  # http:// object store, no proxy: over http.client
    for name, data in files.items():
        assert (got / name).read_bytes() == data
    cache = DownloadCache(str(tmp_path / "c2"))  # each blob cached on the way, verified
    assert all(cache.lookup(digest_bytes(data)) is not None for data in files.values())
    svc = current_service()
    stores = [s for s in svc._client._stores.values() if s is not None]
    assert stores and all("Authorization" not in s.headers for s in stores)


def test_a_damaged_blob_stops_the_download_and_nothing_lands_outside_it(
    app: InProcessServer, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _Seen()
    _use(app, monkeypatch, tmp_path / "c1", seen)
    files = _log(tmp_path / "images", 24, seed=1414)
    name = sorted(files)[len(files) // 2]  # a file in the middle of the download
    bad = digest_bytes(files[name])
    s3 = app.backend.transfers.s3
    s3.client.put_object(Bucket=s3.bucket, Key=s3.key_of(bad), Body=b"rot" + files[name][3:])
    try:
        _use(app, monkeypatch, tmp_path / "c2", seen)
        before = _tree(tmp_path)
        out = tmp_path / "out"
        with cairn.init(project="p") as run, pytest.raises(DigestMismatchError):
            run.use_artifact("images:latest").download(str(out))
        new = _tree(tmp_path) - before
        assert all(p.startswith(("out/", "c2/")) for p in new), new
        assert not (out / name).exists()
        written = _tree(out)
        assert written and not [p for p in written if ".partial" in p or ".cairn-" in p]
        for path in written:  # what was written is what was logged
            assert (out / path).read_bytes() == files[path]
        assert DownloadCache(str(tmp_path / "c2")).lookup(bad) is None
        assert not os.listdir(tmp_path / "c2" / "blobs" / "tmp")
    finally:
        app.backend.blobs.delete_many([bad])  # no damaged blob left for other tests


def test_small_blobs_of_an_s3_store_come_while_the_rest_of_their_urls_are_asked(
    app: InProcessServer, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An S3 store keeps small blobs in its catalog (no presigned GETs). Once the first
    ``URL_FIRST`` have none, they are fetched while the server is asked about the rest (s1 on
    S3: those requests, two a batch of 8,192, went one after the other before the first fetch).
    Pinned by order: the rest's URLs are answered only once a fetch has gone (the old code asked
    them first: the guard ran out); no request more than before."""
    first = 8
    monkeypatch.setattr(_http_download, "URL_FIRST", first)
    rng = random.Random(1416)
    files = {f"d{i % 2}/f{i:03}.txt": rng.randbytes(rng.randrange(300, 900)) for i in range(40)}
    use_in_process(app, monkeypatch, str(tmp_path / "c1"), lambda svc: None)
    _logged(tmp_path / "small", files)
    fetched = threading.Event()
    waited: list[bool] = []
    seen: list[str] = []

    def wrap(svc: Any) -> None:
        def api(request: httpx.Request) -> None:
            if request.url.path.endswith("/blobs/urls"):
                asked = len(json.loads(request.read())["digests"])
                if asked != first:
                    waited.append(fetched.wait(10))  # a guard only: the old code asked first
                seen.append(f"urls {asked}")
            elif request.url.path.endswith("/blobs/fetch"):
                seen.append("fetch")
                fetched.set()

        svc._client.api.event_hooks["request"].append(api)

    use_in_process(app, monkeypatch, str(tmp_path / "c2"), wrap)
    with cairn.init(project="p") as run:
        got = pathlib.Path(run.use_artifact("small:latest").download(str(tmp_path / "out")))
    assert waited == [True]
    assert seen == ["urls 8", "fetch", "urls 32", "fetch"]
    for name, data in files.items():
        assert (got / name).read_bytes() == data


@pytest.mark.parametrize("store", ["local", "s3"])
def test_small_files_come_many_per_request_and_are_written_as_they_come(
    store: str,
    inprocess: InProcess,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Small blobs have no presigned GETs (a local store; an S3 store keeps them in its
    catalog): they come many per request (under 0.05 requests per file in all, the URLs asked
    at most twice: the first 128, then the rest once), each answer in a few pieces of its body
    (not two per blob: each piece costs the server a thread hop and a write), and the files of
    the first answers are written into place while the next requests are on their way (before,
    every request of a batch was answered before the first of its files was written)."""
    part = 64  # GATHER_PART's role with a tenth of the files
    monkeypatch.setattr(_http_download, "GATHER_PART", part, raising=False)
    app = inprocess("sqlite", store)
    reset_database(app.db)
    root = tmp_path / "small"
    rng = random.Random(1415)
    files = {f"d{i % 4}/f{i:04}.txt": rng.randbytes(rng.randrange(300, 900)) for i in range(600)}
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    seen: Counter[str] = Counter()
    out = tmp_path / "out"
    written: list[int] = []  # files in place as each POST /blobs/fetch is sent

    def wrap(svc: Any) -> None:
        def api(request: httpx.Request) -> None:
            seen[request.url.path.rsplit("/", 1)[-1]] += 1
            if request.url.path.endswith("/blobs/fetch"):
                written.append(len(_tree(out)) if out.exists() else 0)

        svc._client.api.event_hooks["request"].append(api)

    use_in_process(app, monkeypatch, str(tmp_path / "c1"), wrap)
    with cairn.init(project="p") as run:
        art = cairn.Artifact("small", "dataset")
        art.add_dir(str(root))
        run.log_artifact(art)
    seen.clear()
    pieces = _count_pieces(app, monkeypatch)
    use_in_process(app, monkeypatch, str(tmp_path / "c2"), wrap)
    with cairn.init(project="p") as run:
        got = pathlib.Path(run.use_artifact("small:latest").download(str(out)))
    assert sum(seen.values()) <= 0.05 * len(files), seen
    assert seen["urls"] <= (2 if store == "s3" else 1), seen
    assert seen["fetch"] >= 4, seen
    assert pieces and max(pieces) <= 2, pieces  # ~40 KiB an answer: one piece (and the end)
    # The last requests leave once the first answers' files are written: four on their way.
    assert written[-1] >= 64 + 2 * part, written
    for name, data in files.items():
        assert (got / name).read_bytes() == data


def _count_pieces(app: InProcessServer, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Per answer to ``POST /blobs/fetch`` from now on, the pieces of body the app sent."""
    asgi = app.transport._asgi
    inner = asgi.app
    pieces: list[int] = []

    async def counting(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/blobs/fetch"):
            await inner(scope, receive, send)
            return
        n = 0

        async def counted(message: Any) -> None:
            nonlocal n
            n += message["type"] == "http.response.body" and bool(message.get("body"))
            await send(message)

        await inner(scope, receive, counted)
        pieces.append(n)

    monkeypatch.setattr(asgi, "app", counting)
    return pieces


@pytest.mark.parametrize("store", ["local", "s3"])
def test_a_damaged_small_blob_is_refused_on_the_way_down(
    store: str,
    inprocess: InProcess,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A small blob that comes with other bytes (a server that reads them damaged and does not
    see it) stops the download: its file is not written, nor is it cached."""
    app = inprocess("sqlite", store)
    reset_database(app.db)
    files = {f"d{i % 3}/f{i:04}.txt": os.urandom(200 + i) for i in range(300)}
    use_in_process(app, monkeypatch, str(tmp_path / "c1"), lambda svc: None)
    _logged(tmp_path / "small", files)
    name = sorted(files)[200]  # in a later answer than the first
    bad = digest_bytes(files[name])
    blobs = app.backend.blobs
    small_many, get = blobs.small_many, blobs.get

    def rot(found: dict[str, bytes]) -> dict[str, bytes]:
        return {d: b"rot" + data[3:] if d == bad else data for d, data in found.items()}

    monkeypatch.setattr(blobs, "small_many", lambda digests: rot(small_many(digests)))
    monkeypatch.setattr(blobs, "get", lambda d: rot({d: get(d)})[d])
    use_in_process(app, monkeypatch, str(tmp_path / "c2"), lambda svc: None)
    out = tmp_path / "out"
    with cairn.init(project="p") as run, pytest.raises(DigestMismatchError):
        run.use_artifact("small:latest").download(str(out))
    assert not (out / name).exists()
    for path in _tree(out):  # what was written is what was logged
        assert (out / path).read_bytes() == files[path]
    assert DownloadCache(str(tmp_path / "c2")).lookup(bad) is None
    assert not os.listdir(tmp_path / "c2" / "blobs" / "tmp")
