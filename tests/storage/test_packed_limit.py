"""The embedded store packs blobs under ``PACKED_LIMIT`` (1 MiB: image-sized ones too), a server's
local store under ``SMALL_LIMIT``; a blob already stored as a file under the smaller limit stays
that file (not packed a second time), and either store reads what the other wrote."""

from __future__ import annotations

import os
import pathlib

from cairn.core import digest_bytes
from cairn.service import LocalService
from cairn.storage import PACKED_LIMIT, SMALL_LIMIT, LocalBlobStore


def _blob(size: int) -> tuple[str, bytes]:
    data = os.urandom(size)
    return digest_bytes(data), data


def _files(root: pathlib.Path) -> list[pathlib.Path]:
    return [p for p in (root / "sha256").rglob("*") if p.is_file()]


def test_the_embedded_store_packs_image_sized_blobs(tmp_path: pathlib.Path) -> None:
    svc = LocalService.open(str(tmp_path / "store"))
    try:
        blobs = svc.local_blobs
        assert blobs is not None and blobs.small_limit == PACKED_LIMIT
        image, larger = _blob(200 << 10), _blob(PACKED_LIMIT)
        blobs.put_many([image, larger])
        root = pathlib.Path(blobs.root)
        # The image-sized blob went into a pack; a blob of the limit or more is a file.
        assert _files(root) == [pathlib.Path(blobs.path_of(larger[0]))]
        assert blobs.packs.present([bytes.fromhex(image[0].split(":")[1])])
        assert blobs.get(image[0]) == image[1] and blobs.get(larger[0]) == larger[1]
    finally:
        svc.close()


def test_a_blob_file_of_the_smaller_limit_is_kept_not_packed_again(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "blobs"
    before = LocalBlobStore(str(root))  # as a store written with the 128 KiB limit
    old = _blob(SMALL_LIMIT + 5)
    before.put_many([old])
    assert len(_files(root)) == 1
    before.close()
    after = LocalBlobStore(str(root), small_limit=PACKED_LIMIT)
    new = _blob(SMALL_LIMIT + 7)
    after.put_many([old, new])
    # The old blob is still its file only (touched, not copied into a pack); the new one packed.
    assert _files(root) == [pathlib.Path(after.path_of(old[0]))]
    assert [i.digest for i in after.list()].count(old[0]) == 1
    assert after.get(old[0]) == old[1] and after.get(new[0]) == new[1]
    assert after.has_many([old[0], new[0]]) == {old[0], new[0]}
    after.close()
    # A store of the smaller limit reads the packed one (reads look in the packs first).
    again = LocalBlobStore(str(root))
    assert again.get(new[0]) == new[1]
    assert again.delete_many([old[0], new[0]]) == 2
    assert again.has_many([old[0], new[0]]) == set()
    again.close()
