"""A full disk (issue 12, item 5): logging says which store is full and leaves nothing torn, gc
frees space on the full disk, and logging works again afterwards. On a real 20 MiB tmpfs."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from cairn.core import ManifestEntry, digest_bytes
from cairn.errors import CairnError
from cairn.service import CommitRequest, LocalService


@pytest.fixture
def small_disk(tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a 20 MiB tmpfs needs root (run the tests as root to include this)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _log(svc: LocalService, src: pathlib.Path, i: int) -> None:
    src.write_bytes(os.urandom(1 << 20))
    info = svc.store_file(str(src))
    small = os.urandom(2000)
    d = digest_bytes(small)
    svc.store_blobs([(d, small)])
    result = svc.commit(
        CommitRequest(
            entity="e",
            project="p",
            name=f"ckpt{i}",
            type="model",
            changes=[
                ("model.bin", ManifestEntry("model.bin", info.digest, info.size)),
                ("notes.txt", ManifestEntry("notes.txt", d, len(small))),
            ],
        )
    )
    assert result.version is not None


def test_a_full_disk_is_named_recovered_by_gc_and_nothing_is_torn(
    small_disk: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    root = small_disk / "store"
    svc = LocalService.open(str(root))
    src = tmp_path / "ckpt.bin"  # the user's files are on another disk
    for i in range(4):
        _log(svc, src, i)
    for i in range(3):  # deleted: their blobs are garbage until gc runs
        svc.delete_version(svc.resolve("e", "p", f"ckpt{i}", None).id, delete_aliases=True)
    logged = 4
    with pytest.raises(CairnError) as full:
        for i in range(4, 100):
            _log(svc, src, i)
            logged += 1
    assert 8 < logged < 30
    message = str(full.value)
    assert "full" in message and str(root) in message, message
    report = svc.verify()
    assert report.ok, report.problems[:3]
    assert report.versions == logged - 3  # nothing torn: every committed version is whole
    # gc on the full disk frees the deleted versions' blobs instead of crashing.
    before = shutil.disk_usage(small_disk).free
    gc = svc.collect_garbage(grace_seconds=0)
    assert gc.removed_blobs >= 3
    assert shutil.disk_usage(small_disk).free >= before + 3 * (1 << 20)
    _log(svc, src, 1000)  # room again
    assert svc.verify().ok
    svc.close()
