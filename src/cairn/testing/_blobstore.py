"""BlobStoreTests: what every BlobStore must do."""

from __future__ import annotations

import os
import threading

import pytest

from cairn.core import digest_bytes
from cairn.errors import BlobNotFoundError, DigestMismatchError
from cairn.storage import BlobStore


class BlobStoreTests:
    """Provide a ``store`` fixture returning an empty BlobStore."""

    def test_put_then_get(self, store: BlobStore) -> None:
        data = b"hello cairn"
        d = digest_bytes(data)
        store.put(d, data)
        assert store.get(d) == data
        assert store.size(d) == len(data)
        assert store.has_many([d, digest_bytes(b"other")]) == {d}

    def test_put_is_idempotent(self, store: BlobStore) -> None:
        data = b"same"
        d = digest_bytes(data)
        store.put(d, data)
        store.put(d, data)
        assert [b.digest for b in store.list()].count(d) == 1

    def test_missing_blob_is_not_found_and_file_not_found(self, store: BlobStore) -> None:
        d = digest_bytes(b"never stored")
        with pytest.raises(BlobNotFoundError):
            store.get(d)
        with pytest.raises(FileNotFoundError):
            store.get(d)
        assert store.size(d) is None
        assert store.has_many([d]) == set()

    def test_put_many_small_and_large(self, store: BlobStore) -> None:
        items = [(digest_bytes(b), b) for b in (b"a", b"b" * 1000, os.urandom(300_000))]
        store.put_many(items)
        for d, b in items:
            assert store.get(d) == b
        assert {i.digest for i in store.list()} >= {d for d, _ in items}

    def test_capabilities_answer_or_decline(self, store: BlobStore) -> None:
        """small_many, local_path and presigned_url either give the blob's content or decline
        (``{}``/None), never other bytes; an absent blob is declined."""
        small, large = b"tiny", os.urandom(300_000)
        ds, dl, absent = digest_bytes(small), digest_bytes(large), digest_bytes(b"absent")
        store.put_many([(ds, small), (dl, large)])
        found = store.small_many([ds, dl, absent])
        assert set(found) <= {ds} and all(found[d] == small for d in found)
        for d, data in ((dl, large), (absent, None)):
            path = store.local_path(d)
            if data is None:
                assert path is None
            elif path is not None:
                with open(path, "rb") as f:
                    assert f.read() == data
            url = store.presigned_url(d, 5, 10)
            if data is not None and url is not None:
                import httpx

                got = httpx.get(url, headers={"Range": "bytes=5-14"})
                assert got.status_code == 206 and got.content == data[5:15]
        assert store.remove_stale_temp(3600) >= 0

    def test_many_at_once_answer_or_decline(self, store: BlobStore) -> None:
        """``get_many`` reads each blob once, in the order asked, verified, and refuses an
        absent one; ``indexed_sizes`` and ``presigned_gets`` give the right sizes (and URLs
        that serve the blob's content) or decline (None / ``{}``), never for an absent blob."""
        small, large = b"tiny", os.urandom(300_000)
        ds, dl, absent = digest_bytes(small), digest_bytes(large), digest_bytes(b"absent")
        store.put_many([(ds, small), (dl, large)])
        assert list(store.get_many([dl, ds, dl])) == [(dl, large), (ds, small)]
        assert list(store.get_many([])) == []
        with pytest.raises(BlobNotFoundError):
            list(store.get_many([ds, absent]))
        sizes = store.indexed_sizes([ds, dl, absent])
        assert sizes is None or sizes == {ds: len(small), dl: len(large)}
        urls = store.presigned_gets([ds, dl, absent])
        assert set(urls) <= {ds, dl}
        if urls:
            import httpx

            for d, (url, n) in urls.items():
                data = small if d == ds else large
                assert n == len(data) and httpx.get(url).content == data

    def test_take_file_stores_a_verified_file(
        self, store: BlobStore, tmp_path: os.PathLike[str]
    ) -> None:
        """``take_file`` stores a file the caller verified (moved in or copied), small or
        large; a store that copies refuses content that is not the digest given."""
        for size in (10, 3_000_000):
            data = os.urandom(size)
            path = os.path.join(os.fspath(tmp_path), f"take{size}")
            with open(path, "wb") as f:
                f.write(data)
            info = store.take_file(path, digest_bytes(data))
            assert (info.digest, info.size) == (digest_bytes(data), size)
            assert store.get(info.digest) == data
        path = os.path.join(os.fspath(tmp_path), "liar")
        with open(path, "wb") as f:
            f.write(b"not what the digest says")
        with pytest.raises(DigestMismatchError):
            store.take_file(path, digest_bytes(b"something else"))  # small: always copied
        assert store.size(digest_bytes(b"something else")) is None

    def test_put_file_hashes_while_copying(
        self, store: BlobStore, tmp_path: os.PathLike[str]
    ) -> None:
        for size in (0, 10, 200_000, 3_000_000):
            data = os.urandom(size)
            path = os.path.join(os.fspath(tmp_path), f"f{size}")
            with open(path, "wb") as f:
                f.write(data)
            info = store.put_file(path)
            assert info.digest == digest_bytes(data)
            assert info.size == size
            assert store.get(info.digest) == data

    def test_copy_to_and_open(self, store: BlobStore, tmp_path: os.PathLike[str]) -> None:
        for data in (b"small", os.urandom(2_000_000)):
            d = digest_bytes(data)
            store.put(d, data)
            dest = os.path.join(os.fspath(tmp_path), "out")
            store.copy_to(d, dest)
            with open(dest, "rb") as f:
                assert f.read() == data
            with store.open(d) as f:
                assert f.read() == data

    def test_get_range(self, store: BlobStore) -> None:
        for data in (b"0123456789", os.urandom(300_000)):
            d = digest_bytes(data)
            store.put(d, data)
            n = len(data)
            assert store.get_range(d, 0, 4) == data[:4]
            assert store.get_range(d, 3, 5) == data[3:8]
            assert store.get_range(d, n - 2, 100) == data[-2:]  # clipped at the end
            assert store.get_range(d, n, 10) == b""  # past the end: nothing
            assert store.get_range(d, n + 5, 10) == b""
            assert store.get_range(d, 2, 0) == b""
            assert store.get_range(d, 0, n) == data
        with pytest.raises(BlobNotFoundError):
            store.get_range(digest_bytes(b"never stored"), 0, 10)
        with pytest.raises(ValueError):
            store.get_range(d, -1, 10)

    def test_delete_many(self, store: BlobStore) -> None:
        items = [(digest_bytes(b), b) for b in (b"x", os.urandom(300_000))]
        store.put_many(items)
        assert store.delete_many([d for d, _ in items] + [digest_bytes(b"absent")]) == 2
        assert store.has_many([d for d, _ in items]) == set()

    def test_many_threads_put_the_same_blobs(self, store: BlobStore) -> None:
        blobs = [os.urandom(n) for n in (1, 100, 200_000)] * 4

        def work() -> None:
            store.put_many([(digest_bytes(b), b) for b in blobs])

        threads = [threading.Thread(target=work) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for b in blobs:
            assert store.get(digest_bytes(b)) == b

    def corrupt(self, store: BlobStore, digest: str, data: bytes) -> None:
        """Replace a blob's bytes behind the store's back; implementations override this."""
        pytest.skip("this store cannot be corrupted from a test")

    def test_damaged_blob_is_an_error_not_data(
        self, store: BlobStore, tmp_path: os.PathLike[str]
    ) -> None:
        def answered(err: pytest.ExceptionInfo[DigestMismatchError]) -> str:
            """What a server answers: no directory or bucket of its store."""
            text = err.value.public or str(err.value)
            assert os.fspath(tmp_path) not in text and "s3://" not in text, text
            return text

        for data in (b"precious", os.urandom(300_000)):
            d = digest_bytes(data)
            store.put(d, data)
            self.corrupt(store, d, bytes([data[0] ^ 0xFF]) + data[1:])  # surely another byte
            with pytest.raises(DigestMismatchError, match=d) as err:
                store.get(d)
            assert d in answered(err)
            with pytest.raises(DigestMismatchError, match=d) as err:
                list(store.get_many([d]))
            answered(err)
            dest = os.path.join(os.fspath(tmp_path), "damaged")
            with pytest.raises(DigestMismatchError) as err:
                store.copy_to(d, dest)
            answered(err)
