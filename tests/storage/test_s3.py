"""S3BlobStore against a real S3 server process (moto), and the server's CatalogBlobStore
(small blobs and the index in the catalog, large ones in S3) on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import pathlib
import uuid
from collections.abc import Iterator

import pytest

from cairn.catalog import Catalog
from cairn.catalog._blobs import CatalogBlobStore
from cairn.core import digest_bytes
from cairn.errors import DigestMismatchError
from cairn.storage import BlobStore
from cairn.storage._s3 import S3BlobStore, checksum_b64, parse_s3_url
from cairn.testing import BlobStoreTests
from tests._infra import Postgres, S3Server, reset_database


def _s3_store(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3BlobStore:
    for k, v in s3.env.items():
        monkeypatch.setenv(k, v)
    return S3BlobStore.from_url(s3.url(f"t-{uuid.uuid4().hex[:12]}/"), endpoint=s3.endpoint)


def _corrupt_s3(store: S3BlobStore, digest: str, data: bytes) -> None:
    # Behind the store's back, without the checksum that a real S3 would check.
    store.client.put_object(Bucket=store.bucket, Key=store.key_of(digest), Body=data)


class TestS3BlobStore(BlobStoreTests):
    @pytest.fixture
    def store(self, s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3BlobStore]:
        store = _s3_store(s3, monkeypatch)
        yield store
        store.close()

    def corrupt(self, store: BlobStore, digest: str, data: bytes) -> None:
        assert isinstance(store, S3BlobStore)
        _corrupt_s3(store, digest, data)

    def test_blobs_are_objects_named_by_digest(self, store: S3BlobStore) -> None:
        d = digest_bytes(b"named")
        store.put(d, b"named")
        head = store.client.head_object(
            Bucket=store.bucket, Key=f"{store.prefix}sha256/{d[7:9]}/{d[9:]}"
        )
        assert head["ContentLength"] == 5

    def test_multipart_uploads_are_verified_before_they_take_the_name(
        self, store: S3BlobStore, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import cairn.storage._s3 as s3mod

        monkeypatch.setattr(s3mod, "PART_SIZE", 5 << 20)  # S3's smallest part
        data = os.urandom((5 << 20) * 2 + 123)
        src = tmp_path / "big"
        src.write_bytes(data)
        info = store.put_file(str(src))
        assert info.digest == digest_bytes(data) and store.get(info.digest) == data
        # A staged object with other content never takes a blob's name.
        staging = f"{store.prefix}uploads/evil"
        store.client.put_object(Bucket=store.bucket, Key=staging, Body=b"evil")
        target = digest_bytes(b"good")
        with pytest.raises(DigestMismatchError):
            store.adopt(staging, target)
        assert store.size(target) is None

    def test_a_multipart_completes_only_where_asked(self, store: S3BlobStore) -> None:
        """``complete_multipart``: the parts in any order; ``if_absent`` leaves an object that
        is there already as it is (False, the upload still open); a failure is cairn's error."""
        from cairn.errors import CairnError

        key, c = f"{store.prefix}streamed/one", store.client

        def upload(body: bytes) -> tuple[str, list[dict[str, object]]]:
            s3_id = c.create_multipart_upload(Bucket=store.bucket, Key=key)["UploadId"]
            parts = [
                {
                    "PartNumber": n,
                    "ETag": c.upload_part(
                        Bucket=store.bucket, Key=key, UploadId=s3_id, PartNumber=n, Body=b
                    )["ETag"],
                }
                for n, b in ((2, body[5 << 20 :]), (1, body[: 5 << 20]))
            ]
            return s3_id, parts

        first = os.urandom((5 << 20) + 7)
        s3_id, parts = upload(first)
        assert store.complete_multipart(key, s3_id, parts, if_absent=True)
        s3_id, parts = upload(os.urandom((5 << 20) + 7))
        assert not store.complete_multipart(key, s3_id, parts, if_absent=True)
        assert c.get_object(Bucket=store.bucket, Key=key)["Body"].read() == first
        open_ids = [
            u["UploadId"] for u in c.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])
        ]
        assert s3_id in open_ids
        c.abort_multipart_upload(Bucket=store.bucket, Key=key, UploadId=s3_id)
        with pytest.raises(CairnError):
            store.complete_multipart(key, s3_id, parts)

    def test_urls_and_checksums(self) -> None:
        assert parse_s3_url("s3://b/some/prefix/") == ("b", "some/prefix/")
        assert parse_s3_url("s3://b") == ("b", "")
        assert checksum_b64(digest_bytes(b"")) == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="


class TestCatalogBlobStoreSqlite(BlobStoreTests):
    @pytest.fixture
    def store(
        self, s3: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
    ) -> Iterator[CatalogBlobStore]:
        store = CatalogBlobStore(
            Catalog(f"sqlite:///{tmp_path}/c.sqlite"), _s3_store(s3, monkeypatch)
        )
        yield store
        store.close()

    def corrupt(self, store: BlobStore, digest: str, data: bytes) -> None:
        assert isinstance(store, CatalogBlobStore)
        if store.size(digest) is not None and (store.size(digest) or 0) < store.small_limit:
            store.corrupt(digest, data)
        else:
            assert isinstance(store.large, S3BlobStore)
            _corrupt_s3(store.large, digest, data)


@pytest.fixture(scope="module")
def pg_db(postgres: Postgres) -> str:
    url = postgres.create_database("blobstore")
    Catalog(url.replace("postgresql://", "postgresql+psycopg://")).dispose()
    return url


class TestCatalogBlobStorePostgres(TestCatalogBlobStoreSqlite):
    @pytest.fixture
    def store(  # type: ignore[override]
        self, s3: S3Server, monkeypatch: pytest.MonkeyPatch, pg_db: str
    ) -> Iterator[CatalogBlobStore]:
        reset_database(pg_db, keep=("alembic_version",))
        catalog = Catalog(pg_db.replace("postgresql://", "postgresql+psycopg://"), create=False)
        store = CatalogBlobStore(catalog, _s3_store(s3, monkeypatch))
        yield store
        store.close()
        catalog.dispose()
