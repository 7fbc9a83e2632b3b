from __future__ import annotations

import os
import pathlib

import pytest

from cairn.core import digest_bytes
from cairn.errors import UsageError
from cairn.storage import BlobStore, LocalBlobStore, MemoryBlobStore, ReadOnlyBlobStore
from cairn.testing import BlobStoreTests


class TestLocalBlobStore(BlobStoreTests):
    @pytest.fixture
    def store(self, tmp_path: pathlib.Path) -> LocalBlobStore:
        return LocalBlobStore(str(tmp_path / "blobs"))

    def corrupt(self, store: BlobStore, digest: str, data: bytes) -> None:
        assert isinstance(store, LocalBlobStore)
        if len(data) < store.small_limit:
            pack, offset, size = (
                store.packs.db()
                .execute(
                    "SELECT pack, offset, size FROM packed WHERE digest = ?",
                    (bytes.fromhex(digest[7:]),),
                )
                .fetchone()
            )
            with open(store.packs.pack_path(pack), "r+b") as f:
                f.seek(offset)
                f.write(data[:size].ljust(size, b"\0"))
        else:
            path = store.path_of(digest)
            os.chmod(path, 0o644)
            with open(path, "wb") as f:
                f.write(data)

    def test_large_blobs_are_read_only_files_named_by_digest(self, store: LocalBlobStore) -> None:
        data = os.urandom(store.small_limit)
        d = digest_bytes(data)
        store.put(d, data)
        path = store.path_of(d)
        assert path.endswith(os.path.join("sha256", d[7:9], d[9:]))
        assert not os.stat(path).st_mode & 0o222
        assert os.listdir(os.path.join(store.root, "tmp")) == []

    def test_link_policy_never_shares_the_users_inode(
        self, store: LocalBlobStore, tmp_path: pathlib.Path
    ) -> None:
        src = tmp_path / "model.bin"
        content = os.urandom(store.small_limit + 1)
        src.write_bytes(content)
        info = store.put_file(str(src), link=True)
        assert os.stat(store.path_of(info.digest)).st_ino != os.stat(src).st_ino
        with open(src, "r+b") as f:  # written over in place: the blob does not follow
            f.write(b"\0" * 100)
        assert store.get(info.digest) == content
        assert os.listdir(os.path.join(store.root, "tmp")) == []

    def test_stale_partial_files_are_cleaned(self, store: LocalBlobStore) -> None:
        stale = os.path.join(store.root, "tmp", "x.partial")
        with open(stale, "w") as f:
            f.write("half")
        os.utime(stale, (0, 0))
        assert store.remove_stale_temp(older_than=3600) == 1


class TestMemoryBlobStore(BlobStoreTests):
    @pytest.fixture
    def store(self) -> MemoryBlobStore:
        return MemoryBlobStore()

    def corrupt(self, store: BlobStore, digest: str, data: bytes) -> None:
        assert isinstance(store, MemoryBlobStore)
        store.corrupt(digest, data)


def test_read_only_wrapper_refuses_writes() -> None:
    inner = MemoryBlobStore()
    d = digest_bytes(b"x")
    inner.put(d, b"x")
    ro = ReadOnlyBlobStore(inner)
    assert ro.read_only and ro.get(d) == b"x"
    with pytest.raises(UsageError, match="read-only"):
        ro.put(digest_bytes(b"y"), b"y")
    with pytest.raises(UsageError):
        ro.delete_many([d])
