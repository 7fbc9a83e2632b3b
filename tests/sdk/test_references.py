"""References to http(s):// and s3:// content, against real servers on loopback.

HTTP: a ``http.server`` in a thread of the test process. S3: moto's standalone server, started as
a separate process once per test worker; boto3 talks the real S3 wire protocol to it.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import pathlib
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import cairn
from cairn.errors import CommError, DigestMismatchError, ValidationError
from tests._infra import S3Server, free_port

# -- a real HTTP server -------------------------------------------------------------------------


class FileServer:
    """Serves ``files`` (path -> bytes). ``/etag/...`` paths send a strong ETag, ``/weak/...`` a
    weak one, others none. ``hits`` counts requests."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.hits = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits += 1
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                tag = hashlib.sha1(body).hexdigest()
                if self.path.startswith("/etag/"):
                    self.send_header("ETag", f'"{tag}"')
                elif self.path.startswith("/weak/"):
                    self.send_header("ETag", f'W/"{tag}"')
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        # shutdown() waits for the loop to look at its flag: a short poll, not the default 0.5 s.
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def web() -> Iterator[FileServer]:
    server = FileServer()
    yield server
    server.close()


def log(art: cairn.Artifact) -> cairn.Artifact:
    with cairn.init(project="refs") as run:
        run.log_artifact(art)
    return art


def test_http_reference_pinned_by_etag(web: FileServer, tmp_path: pathlib.Path) -> None:
    web.files["/etag/data/train.csv"] = b"a,b\n1,2\n"
    art = cairn.Artifact("web", "dataset")
    (entry,) = art.add_reference(f"{web.url}/etag/data/train.csv")
    expected_tag = hashlib.sha1(b"a,b\n1,2\n").hexdigest()
    assert (entry.path, entry.size, entry.digest) == ("train.csv", 8, expected_tag)
    assert entry.extra == {"etag": expected_tag}
    log(art)
    root = art.download(root=str(tmp_path / "one"))
    assert pathlib.Path(root, "train.csv").read_bytes() == b"a,b\n1,2\n"

    web.files["/etag/data/train.csv"] = b"a,b\n9,9\n"  # same size, new content, new ETag
    with pytest.raises(DigestMismatchError, match=r"'train\.csv'.*changed since"):
        art.download(root=str(tmp_path / "two"))
    assert not (tmp_path / "two" / "train.csv").exists()
    with pytest.warns(UserWarning, match=r"skipped.*train\.csv"):
        art.download(root=str(tmp_path / "three"), allow_missing_references=True)
    assert not (tmp_path / "three" / "train.csv").exists()


def test_http_reference_without_etag_pins_the_content(
    web: FileServer, tmp_path: pathlib.Path
) -> None:
    web.files["/plain/x.bin"] = b"0123456789"
    web.files["/weak/y.bin"] = b"weak tags do not pin bytes"
    art = cairn.Artifact("web", "dataset")
    (x,) = art.add_reference(f"{web.url}/plain/x.bin", name="files/x.bin")
    (y,) = art.add_reference(f"{web.url}/weak/y.bin")
    assert (
        x.path == "files/x.bin"
        and x.digest == "sha256:" + hashlib.sha256(b"0123456789").hexdigest()
    )
    assert y.digest.startswith("sha256:") and y.extra == {}
    log(art)
    assert pathlib.Path(art.download(root=str(tmp_path / "a")), "files", "x.bin").exists()
    web.files["/plain/x.bin"] = b"9876543210"  # same size, other bytes
    with pytest.raises(DigestMismatchError, match=r"files/x\.bin"):
        art.download(root=str(tmp_path / "b"))
    del web.files["/plain/x.bin"]
    with pytest.raises(FileNotFoundError, match=r"files/x\.bin.*404"):
        art.download(root=str(tmp_path / "c"))


def test_http_reference_without_checksum_records_the_url_alone(
    web: FileServer, tmp_path: pathlib.Path
) -> None:
    url = f"{web.url}/plain/live.txt"
    art = cairn.Artifact("web", "dataset")
    (entry,) = art.add_reference(url, checksum=False)
    assert web.hits == 0  # nothing was fetched
    assert (entry.digest, entry.size, entry.ref) == (url, None, url)
    log(art)
    web.files["/plain/live.txt"] = b"whatever is there now"
    root = art.download(root=str(tmp_path / "d"))
    assert pathlib.Path(root, "live.txt").read_bytes() == b"whatever is there now"


def test_http_reference_bad_input(web: FileServer) -> None:
    art = cairn.Artifact("web", "dataset")
    with pytest.raises(ValidationError, match="404"):
        art.add_reference(f"{web.url}/plain/missing.csv")
    with pytest.raises(ValidationError, match="credentials"):
        art.add_reference("https://user:secret@example.com/x.csv")
    with pytest.raises(ValidationError, match="name="):
        art.add_reference(f"{web.url}/plain/", checksum=False)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(CommError, match=f"127.0.0.1:{port}"):
        art.add_reference(f"http://127.0.0.1:{port}/x.csv")


# -- a real S3 server (moto) ---------------------------------------------------------------------


@pytest.fixture
def s3_endpoint(s3: S3Server) -> str:
    """The session's moto server (tests/conftest.py), also used by the server backend."""
    return s3.endpoint


@pytest.fixture
def s3_client(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A boto3 client on the moto server, with the standard AWS variables pointing at it."""
    import boto3

    for var, value in {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return boto3.client("s3")


def bucket(client: Any, versioned: bool = False) -> str:
    name = f"cairn-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    if versioned:
        client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def test_s3_objects_and_prefixes(s3_client: Any, tmp_path: pathlib.Path) -> None:
    b = bucket(s3_client)
    for key, body in {
        "data/x.txt": b"x",
        "data/sub/y.txt": b"yy",
        "data/sub/": b"",  # a "directory" marker, not content
        "database.txt": b"not under data/",
        "model.pt": b"weights",
    }.items():
        s3_client.put_object(Bucket=b, Key=key, Body=body)
    art = cairn.Artifact("s3", "dataset")
    tree = art.add_reference(f"s3://{b}/data", name="train")
    assert sorted(e.path for e in tree) == ["train/sub/y.txt", "train/x.txt"]
    assert {e.ref for e in tree} == {f"s3://{b}/data/x.txt", f"s3://{b}/data/sub/y.txt"}
    (model,) = art.add_reference(f"s3://{b}/model.pt")
    assert (model.path, model.size) == ("model.pt", 7)
    assert model.digest == hashlib.md5(b"weights").hexdigest() == model.extra["etag"]
    assert "versionID" not in model.extra  # the bucket is not versioned
    flat = cairn.Artifact("flat", "dataset").add_reference(f"s3://{b}/data/")
    assert sorted(e.path for e in flat) == ["sub/y.txt", "x.txt"]
    with pytest.raises(ValidationError, match="max_objects=1"):
        cairn.Artifact("x", "dataset").add_reference(f"s3://{b}/data", max_objects=1)
    with pytest.raises(ValidationError, match="no object under"):
        cairn.Artifact("x", "dataset").add_reference(f"s3://{b}/nothing-here")
    log(art)

    root = pathlib.Path(art.download(root=str(tmp_path / "a")))
    assert (root / "train" / "sub" / "y.txt").read_bytes() == b"yy"
    assert (root / "model.pt").read_bytes() == b"weights"
    s3_client.put_object(Bucket=b, Key="model.pt", Body=b"retrained")
    with pytest.raises(DigestMismatchError, match=r"'model\.pt'.*changed since"):
        art.download(root=str(tmp_path / "b"))
    with pytest.warns(UserWarning, match="skipped"):
        art.download(root=str(tmp_path / "c"), allow_missing_references=True)
    assert (tmp_path / "c" / "train" / "x.txt").read_bytes() == b"x"
    s3_client.put_object(Bucket=b, Key="model.pt", Body=b"weights")  # the same bytes, the same ETag
    assert (pathlib.Path(art.download(root=str(tmp_path / "b"))) / "model.pt").exists()
    s3_client.delete_object(Bucket=b, Key="data/x.txt")
    with pytest.raises(FileNotFoundError, match=r"train/x\.txt"):
        art.download(root=str(tmp_path / "d"))


def test_s3_versioned_bucket_pins_the_version(s3_client: Any, tmp_path: pathlib.Path) -> None:
    b = bucket(s3_client, versioned=True)
    first = s3_client.put_object(Bucket=b, Key="labels/a.csv", Body=b"first")
    s3_client.put_object(Bucket=b, Key="labels/b.csv", Body=b"bee")
    art = cairn.Artifact("pinned", "dataset")
    (one,) = art.add_reference(f"s3://{b}/labels/a.csv")
    assert one.extra["versionID"] == first["VersionId"]
    listed = {e.path: e for e in art.add_reference(f"s3://{b}/labels", name="all")}
    assert listed["all/a.csv"].extra["versionID"] == first["VersionId"]
    log(art)
    s3_client.put_object(Bucket=b, Key="labels/a.csv", Body=b"second, longer")
    s3_client.delete_object(Bucket=b, Key="labels/b.csv")  # a delete marker; the version remains
    root = pathlib.Path(art.download(root=str(tmp_path / "a")))
    assert (root / "a.csv").read_bytes() == b"first"
    assert (root / "all" / "a.csv").read_bytes() == b"first"
    assert (root / "all" / "b.csv").read_bytes() == b"bee"
    s3_client.delete_object(Bucket=b, Key="labels/a.csv", VersionId=first["VersionId"])
    with pytest.raises(FileNotFoundError, match=r"a\.csv"):
        art.download(root=str(tmp_path / "b"))
    pinned = cairn.Artifact("old", "dataset")
    with pytest.raises(ValidationError, match="cannot be added"):
        pinned.add_reference(f"s3://{b}/labels/a.csv?versionId={first['VersionId']}")


def test_s3_without_checksum_fetches_what_is_there(s3_client: Any, tmp_path: pathlib.Path) -> None:
    b = bucket(s3_client)
    art = cairn.Artifact("loose", "dataset")
    (obj,) = art.add_reference(f"s3://{b}/later.txt", checksum=False)
    (tree,) = art.add_reference(f"s3://{b}/dir", checksum=False)
    assert (obj.digest, obj.size) == (f"s3://{b}/later.txt", None)
    assert tree.path == "dir"
    log(art)
    s3_client.put_object(Bucket=b, Key="later.txt", Body=b"now")
    s3_client.put_object(Bucket=b, Key="dir/p/q.txt", Body=b"q")
    root = pathlib.Path(art.download(root=str(tmp_path / "a")))
    assert (root / "later.txt").read_bytes() == b"now"
    assert (root / "dir" / "p" / "q.txt").read_bytes() == b"q"


def test_s3_errors_are_clear(s3_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    art = cairn.Artifact("x", "dataset")
    with pytest.raises(ValidationError, match="no bucket"):
        art.add_reference("s3:///key")
    with pytest.raises(ValidationError, match=r"does not exist|no object"):
        art.add_reference(f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/k")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(CommError, match="AWS_ENDPOINT_URL"):
        art.add_reference("s3://bucket/key")
    assert os.environ["AWS_ACCESS_KEY_ID"] == "testing"


def test_s3_bucket_roots_and_directory_markers_list_like_w_and_b(
    s3_client: Any, tmp_path: pathlib.Path
) -> None:
    """``s3://bucket`` lists the whole bucket, ``s3://bucket/prefix/`` what is under it; the
    zero-byte "dir/" markers consoles and sync tools make are not content, a "folder" object
    (content type application/x-directory) stands for what is under it, and an empty file is
    a file."""
    b = bucket(s3_client)
    for key, body in {
        "a.txt": b"a",
        "dir/": b"",  # markers, at every level
        "dir/b.txt": b"bb",
        "dir/sub/": b"",
        "dir/sub/c.txt": b"ccc",
        "dir/empty.txt": b"",
    }.items():
        s3_client.put_object(Bucket=b, Key=key, Body=body)
    s3_client.put_object(
        Bucket=b, Key="folder", Body=b"", ContentType="application/x-directory; charset=UTF-8"
    )
    s3_client.put_object(Bucket=b, Key="folder/d.txt", Body=b"dddd")
    whole = sorted(e.path for e in cairn.Artifact("w", "dataset").add_reference(f"s3://{b}"))
    assert whole == ["a.txt", "dir/b.txt", "dir/empty.txt", "dir/sub/c.txt", "folder/d.txt"]
    slash = sorted(e.path for e in cairn.Artifact("w", "dataset").add_reference(f"s3://{b}/"))
    assert slash == whole
    art = cairn.Artifact("markers", "dataset")
    under = {e.path: e for e in art.add_reference(f"s3://{b}/dir/", name="d")}
    assert sorted(under) == ["d/b.txt", "d/empty.txt", "d/sub/c.txt"]
    assert under["d/sub/c.txt"].ref == f"s3://{b}/dir/sub/c.txt" and under["d/empty.txt"].size == 0
    (folder,) = art.add_reference(f"s3://{b}/folder", name="f")
    assert (folder.path, folder.size) == ("f/d.txt", 4)
    (loose,) = art.add_reference(f"s3://{b}", checksum=False)
    assert loose.path == b  # W&B names a bucket root's entry after the bucket
    log(art)
    root = pathlib.Path(art.download(root=str(tmp_path / "a")))
    assert (root / "d" / "sub" / "c.txt").read_bytes() == b"ccc"
    assert (root / "d" / "empty.txt").read_bytes() == b""
    assert (root / "f" / "d.txt").read_bytes() == b"dddd"
    assert (root / b / "dir" / "sub" / "c.txt").read_bytes() == b"ccc"
    assert (root / b / "folder" / "d.txt").read_bytes() == b"dddd"
    assert not (root / "d" / "sub").is_file() and not (root / b / "dir" / "sub").is_file()
