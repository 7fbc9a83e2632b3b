"""ServiceTests: blobs in and out (whole, around the small-blob limit, ranges, batches)."""

from __future__ import annotations

import os

import pytest

from cairn.core import ManifestEntry, digest_bytes, short_digest
from cairn.errors import (
    DigestMismatchError,
    NotFoundError,
)
from cairn.service import (
    Service,
)
from cairn.storage import SMALL_LIMIT
from cairn.testing._service_data import commit_request


class BlobTests:
    """Part of ``ServiceTests``: needs a ``service`` fixture returning a Service over an empty
    store."""

    def test_blob_round_trip(self, service: Service, tmp_path: os.PathLike[str]) -> None:
        src = os.path.join(os.fspath(tmp_path), "big.bin")
        data = os.urandom(1_500_000)
        with open(src, "wb") as f:
            f.write(data)
        info = service.store_file(src)
        assert info.digest == digest_bytes(data)
        assert service.missing_blobs([info.digest, digest_bytes(b"nope")]) == [
            digest_bytes(b"nope")
        ]
        dest = os.path.join(os.fspath(tmp_path), "back.bin")
        service.download_blob(info.digest, dest)
        with open(dest, "rb") as f:
            assert f.read() == data
        held = service.blob_path(info.digest)  # a local store's own file, or None
        if held is not None:
            with open(held, "rb") as f:
                assert f.read() == data
        assert service.blob_path(digest_bytes(b"nope")) is None

    def test_store_blob_file_is_checked(self, service: Service, tmp_path: os.PathLike[str]) -> None:
        sent: list[int] = []  # ``sent`` is called once a file, when its content has left
        for size in (1000, 300_000):
            data = os.urandom(size)
            path = os.path.join(os.fspath(tmp_path), f"f{size}")
            with open(path, "wb") as f:
                f.write(data)
            service.store_blob_file(path, digest_bytes(data), size, sent=lambda: sent.append(1))
            assert service.read_blob(digest_bytes(data)) == data and len(sent) == 1
            sent.clear()
            liar = digest_bytes(data + b"!")
            with pytest.raises(DigestMismatchError):
                service.store_blob_file(path, liar, size)
            assert service.missing_blobs([liar]) == [liar]

    def test_files_around_the_small_limit_and_up_to_8_mib(
        self, service: Service, tmp_path: os.PathLike[str]
    ) -> None:
        """Sizes where a blob changes its path: under, at and over the small-blob limit (inline
        rows / batches vs. files / uploads), a few MiB, and around 8 MiB (one batch request,
        the size of a part), stored from a file and from bytes, committed and read back."""
        root = os.fspath(tmp_path)
        sizes = [SMALL_LIMIT - 1, SMALL_LIMIT, SMALL_LIMIT + 1, (3 << 20) + 7, (8 << 20) - 1]
        entries: list[ManifestEntry] = []
        blobs: dict[str, bytes] = {}
        for i, size in enumerate(sizes):
            data = os.urandom(size)
            if i % 2:
                service.store_blobs([(digest_bytes(data), data)])
                digest: str = digest_bytes(data)
            else:
                src = os.path.join(root, f"src-{size}")
                with open(src, "wb") as f:
                    f.write(data)
                info = service.store_file(src)
                assert info.size == size
                digest = info.digest
            assert digest == digest_bytes(data)
            blobs[digest] = data
            entries.append(ManifestEntry(f"f{size}.bin", digest, size))
        data = os.urandom(8 << 20)  # exactly 8 MiB, in a batch with a small one
        small = b"small neighbour"
        service.store_blobs([(digest_bytes(small), small), (digest_bytes(data), data)])
        for blob in (small, data):
            blobs[digest_bytes(blob)] = blob
            entries.append(ManifestEntry(f"b{len(blob)}.bin", digest_bytes(blob), len(blob)))
        assert service.missing_blobs(list(blobs)) == []
        result = service.commit(commit_request(service, entries, name="sizes"))
        assert result.version is not None and result.version.size == sum(map(len, blobs.values()))
        service.prefetch_blobs(list(blobs))
        for digest, blob in blobs.items():
            dest = os.path.join(root, "out-" + short_digest(digest))
            service.download_blob(digest, dest)
            with open(dest, "rb") as f:
                assert f.read() == blob
            assert service.read_blob(digest) == blob

    def test_prefetch_then_download(self, service: Service, tmp_path: os.PathLike[str]) -> None:
        blobs = [os.urandom(n) for n in (10, 4096, 200_000)]
        for data in blobs:
            service.store_blobs([(digest_bytes(data), data)])
        digests = [digest_bytes(b) for b in blobs]
        ghost = digest_bytes(b"not stored anywhere")
        service.prefetch_blobs([*digests, ghost])  # a hint: absent blobs are not an error here
        for data, d in zip(blobs, digests, strict=True):
            dest = os.path.join(os.fspath(tmp_path), d[7:20])
            service.download_blob(d, dest)
            with open(dest, "rb") as f:
                assert f.read() == data

    def test_read_blob_range(self, service: Service, tmp_path: os.PathLike[str]) -> None:
        small = os.urandom(5000)
        service.store_blobs([(digest_bytes(small), small)])
        src = os.path.join(os.fspath(tmp_path), "big.bin")
        big = os.urandom(1_500_000)
        with open(src, "wb") as f:
            f.write(big)
        service.store_file(src)
        for data in (small, big):
            d, n = digest_bytes(data), len(data)
            assert service.read_blob_range(d, 0, 10) == data[:10]
            assert service.read_blob_range(d, 1000, 3000) == data[1000:4000]
            assert service.read_blob_range(d, n - 3, 100) == data[-3:]
            assert service.read_blob_range(d, n, 10) == b""
            assert service.read_blob_range(d, 7, 0) == b""
        assert service.read_blob_range(digest_bytes(big), 0, len(big)) == big
        with pytest.raises(FileNotFoundError):
            service.read_blob_range(digest_bytes(b"never stored"), 0, 10)

    def test_read_blobs_in_batches(self, service: Service) -> None:
        blobs = [os.urandom(n) for n in (1, 4096, 200_000, 7)]
        service.store_blobs([(digest_bytes(b), b) for b in blobs])
        digests = [digest_bytes(b) for b in blobs]
        assert list(service.read_blobs(digests)) == list(zip(digests, blobs, strict=True))
        with pytest.raises(NotFoundError):
            list(service.read_blobs([digest_bytes(b"not stored anywhere")]))
