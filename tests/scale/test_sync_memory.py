"""Issue 18: ``cairn sync`` sends a large version's content holding a batch of it, not all of it.

A version of 100,000 entries (about 200 manifest pages) is copied to an empty store; the copy is
traced with ``tracemalloc``: it must hold one batch of pages and digests (it used to read every
page's bytes and every digest of the manifest into memory first: 9.8 MiB here, growing with the
entry count). Allocations, unlike time, do not depend on how loaded the machine is.
"""

from __future__ import annotations

import pathlib
import tracemalloc

import pytest

from cairn.core import ManifestEntry, digest_bytes
from cairn.sdk._progress import Progress
from cairn.sdk._sync_copy import ContentCopier
from cairn.sdk._sync_plan import SyncReport
from cairn.service import CommitRequest, LocalService

pytestmark = [pytest.mark.xdist_group("scale-memory")]

ENTRIES = 100_000
PEAK_MIB = 6  # measured: 2.7 MiB walking a batch at a time; 9.8 MiB with every page held


def test_sync_copies_a_100k_entry_version_a_batch_at_a_time(tmp_path: pathlib.Path) -> None:
    source = LocalService.open(str(tmp_path / "source"))
    dest = LocalService.open(str(tmp_path / "dest"))
    blobs = [(digest_bytes(b"%d" % i), b"%d" % i) for i in range(100)]
    source.store_blobs(blobs)
    changes = []
    for i in range(ENTRIES):
        path = f"d{i // 500:04}/f{i:06}.txt"
        digest, data = blobs[i % 100]
        changes.append((path, ManifestEntry(path, digest, len(data))))
    result = source.commit(CommitRequest("me", "p", "big", "dataset", changes))
    del changes
    assert result.version is not None and result.version.digest is not None
    root = result.version.digest
    report = SyncReport(source="source", destination="dest")
    copier = ContentCopier(source, dest, report, Progress("syncing", None, None))
    tracemalloc.start()
    try:
        copier.copy(root)
        copier.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < PEAK_MIB << 20, f"the copy peaked at {peak / (1 << 20):.1f} MiB"
    # Everything arrived: every page and blob of the version is in the destination.
    assert dest.missing_blobs([root, *(d for d, _ in blobs)]) == []
    assert report.blobs_sent >= 100 + 200
    source.close()
    dest.close()
