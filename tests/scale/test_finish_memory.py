"""Issue 18: a distributed finish holds a bounded number of staged changes in memory.

50,000 changes are staged (as ten workers' upserts would), then the finish is traced with
``tracemalloc``: its peak of Python allocations must stay far below what the staged changes
take as objects (the finish used to read every staged change into one list and keep every
manifest page it wrote until the end: 33 MiB here, 67 MiB for 100,000). Allocations, unlike
time, do not depend on how loaded the machine is. The million-change figure (peak RSS of whole
processes, embedded and through a server) is bench_scale's.
"""

from __future__ import annotations

import pathlib
import tracemalloc

import pytest

from cairn.core import ManifestEntry, build_tree, digest_bytes
from cairn.service import FinishRequest, LocalService, StageRequest

pytestmark = [pytest.mark.xdist_group("scale-memory")]

CHANGES = 50_000
PER_UPSERT = 5_000
PEAK_MIB = 16  # measured: 8.7 MiB streaming; 33 MiB before (every change and page held)

_DIST = {"entity": "me", "project": "p", "name": "big", "type": "dataset", "distributed_id": "g"}


def _entries(svc: LocalService) -> list[ManifestEntry]:
    blobs = [(digest_bytes(b"%d" % i), b"%d" % i) for i in range(100)]
    svc.store_blobs(blobs)
    return [
        ManifestEntry(f"shard-{i % 7}/d{i // 500:04}/f{i:06}.txt", blobs[i % 100][0], 2)
        for i in range(CHANGES)
    ]


def test_a_finish_of_50k_staged_changes_holds_few_of_them(tmp_path: pathlib.Path) -> None:
    svc = LocalService.open(str(tmp_path / "store"))
    entries = _entries(svc)
    for start in range(0, CHANGES, PER_UPSERT):
        part = sorted(entries[start : start + PER_UPSERT])
        svc.stage(StageRequest(**_DIST, changes=[(e.path, e) for e in part]))  # type: ignore[arg-type]
    expected = build_tree(sorted(entries), lambda digest, data: None).digest
    del entries
    tracemalloc.start()
    try:
        result = svc.finish(FinishRequest(**_DIST, changes=[]))  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.created and result.version is not None
    assert result.version.file_count == CHANGES and result.version.digest == expected
    assert peak < PEAK_MIB << 20, f"the finish peaked at {peak / (1 << 20):.1f} MiB"
    svc.close()
