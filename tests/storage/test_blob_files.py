"""Blob files (128 KiB and more) given as bytes are made durable a batch at a time
(``BlobFiles.put_many``): every blob complete under its name, read-only, and a writer killed
mid-batch leaves no name with less than its content."""

from __future__ import annotations

import os
import pathlib
import signal
import stat
import subprocess
import sys
import textwrap
import time

from cairn.core import digest_bytes
from cairn.storage import LocalBlobStore


def _blob(i: int, size: int = 200 << 10) -> tuple[str, bytes]:
    data = i.to_bytes(4, "big") + os.urandom(size - 4)
    return digest_bytes(data), data


def test_a_batch_stores_new_known_and_repeated_blobs_once_each(tmp_path: pathlib.Path) -> None:
    store = LocalBlobStore(str(tmp_path / "blobs"))
    known = _blob(0)
    store.put_many([known])
    old = time.time() - 3600
    os.utime(store.path_of(known[0]), (old, old))
    new = [_blob(i) for i in range(1, 40)]
    store.put_many([known, *new, new[0]])
    for digest, data in [known, *new]:
        assert store.get(digest) == data
        assert stat.S_IMODE(os.stat(store.path_of(digest)).st_mode) & 0o222 == 0  # read-only
    assert os.stat(store.path_of(known[0])).st_mtime > old  # relied on again: gc spares it
    assert os.listdir(tmp_path / "blobs" / "tmp") == []
    assert {i.digest for i in store.list()} == {d for d, _ in [known, *new]}


def test_a_writer_killed_mid_batch_leaves_only_whole_blobs(tmp_path: pathlib.Path) -> None:
    root = str(tmp_path / "blobs")
    child = textwrap.dedent(
        f"""
        import os
        from cairn.core import digest_bytes
        from cairn.storage import LocalBlobStore
        store = LocalBlobStore({root!r})
        n = 0
        while True:
            batch = [os.urandom(150_000 + i) for i in range(60)]
            store.put_many([(digest_bytes(b), b) for b in batch])
            n += 1
            if n == 2:
                print("ready", flush=True)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = LocalBlobStore(root)
    listed = list(store.list())
    assert len(listed) >= 120
    for info in listed:  # get verifies every byte against the digest
        assert len(store.get(info.digest)) == info.size
    store.remove_stale_temp(-1)
    assert os.listdir(os.path.join(root, "tmp")) == []
