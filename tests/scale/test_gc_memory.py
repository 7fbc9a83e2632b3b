"""Issue 18: gc reads what pending versions staged a batch of rows at a time.

100,000 staged changes with distinct blobs: reading their digests for gc (``staged_digests``)
must hold a batch of rows, not all of them (the old query returned them in one list: ~12 MiB of
strings here, growing with every staged change). Allocations, unlike time, do not depend on how
loaded the machine is.
"""

from __future__ import annotations

import pathlib
import tracemalloc

import pytest

from cairn.catalog import Catalog, Tx
from cairn.core import Change, ManifestEntry, digest_bytes
from cairn.service import LocalService, StageRequest

pytestmark = [pytest.mark.xdist_group("scale-memory")]

CHANGES = 100_000
PEAK_MIB = 5  # measured: 1.2 MiB in batches of 2,000 rows; 12.2 MiB as one list


def test_gc_reads_100k_staged_digests_a_batch_at_a_time(tmp_path: pathlib.Path) -> None:
    svc = LocalService.open(str(tmp_path / "store"))
    data = b"staged"
    svc.store_blobs([(digest_bytes(data), data)])
    real = ManifestEntry("real.txt", digest_bytes(data), len(data))
    request = StageRequest("me", "p", "big", "dataset", "g", [("real.txt", real)])
    svc.stage(request)
    catalog: Catalog = svc.catalog

    def stage_rows(tx: Tx) -> None:
        [vid] = tx.pending.older_than(1e12)
        changes: list[Change] = []
        for i in range(CHANGES):
            path = f"d{i // 500:04}/f{i:06}.txt"
            changes.append((path, ManifestEntry(path, "sha256:" + f"{i:064x}", 1)))
        tx.pending.stage(vid, changes, None)

    catalog.write(stage_rows)

    def count(tx: Tx) -> int:
        return sum(1 for _ in tx.pending.staged_digests())

    tracemalloc.start()
    try:
        found = catalog.read(count)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert found == CHANGES + 1
    assert peak < PEAK_MIB << 20, f"reading staged digests peaked at {peak / (1 << 20):.1f} MiB"
    # and gc keeps the staged blob
    assert svc.collect_garbage(grace_seconds=0).removed_blobs == 0
    svc.close()
