"""Issue 18: a server checks a client-written manifest (``CommitRequest.manifest``, a streamed
first log) batch by batch without keeping what it read: the key's cache of readable digests is
not filled with every blob of the manifest (up to 200,000 digests, ~30 MiB of a server's memory
during a 1,000,000-file commit). Python allocations traced around the commit, in process (they
do not depend on the machine's load)."""

from __future__ import annotations

import pathlib
import tracemalloc

from cairn.core import TreeBuilder
from cairn.service import CommitRequest
from tests._infra import reset_database
from tests.conftest import InProcess
from tests.server.conftest import stored_entries

N = 10_000
# Measured: 5.6 MiB with the check keeping nothing; 7.3 MiB when every digest checked was
# remembered for the key (the code before; 30,000 entries: 12.0 against 16.5).
PEAK_MIB = 6.5


def test_a_commit_naming_a_client_manifest_keeps_no_digest_per_entry(
    inprocess: InProcess, tmp_path: pathlib.Path
) -> None:
    app = inprocess("sqlite", "local")
    reset_database(app.db)
    svc = app.service(app.create_key("me", "scale", "write"), str(tmp_path))
    entries = stored_entries(svc, b"m", N)
    pages: list[tuple[str, bytes]] = []
    builder = TreeBuilder(lambda digest, data: pages.append((digest, data)))
    builder.extend(entries)
    root = builder.finish().digest
    svc.store_blobs(pages)
    del entries, builder
    pages.clear()
    tracemalloc.start()
    try:
        result = svc.commit(CommitRequest("me", "scale", "big", "dataset", [], manifest=root))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.version is not None and result.version.file_count == N
    assert peak < PEAK_MIB * (1 << 20), f"the commit peaked at {peak / (1 << 20):.1f} MiB"
