"""Issue 18: an upsert's changes are read from its body a batch at a time (``StreamedChanges``):
the server never holds all the changes of a request as Python objects at once, and its check of
the blobs they name remembers none of them. The Python allocations of the request traced in
process, the body made before (they do not depend on the machine's load)."""

from __future__ import annotations

import json
import pathlib
import tracemalloc

import httpx

from cairn.service import API
from cairn.service._wire import changes_to_json
from tests._infra import reset_database
from tests.conftest import InProcess
from tests.server.conftest import stored_entries

N = 8_000
# Measured: 7.8 MiB streamed (the body's text, a batch of 5,000 changes at a time); 12.8 MiB
# with the body decoded whole and every digest remembered for the key (the code before; 10,000
# changes: 8.0 against 16.0, 20,000: 9.1 against 31.5).
PEAK_MIB = 10.5


def test_an_upsert_of_many_changes_is_staged_in_batches(
    inprocess: InProcess, tmp_path: pathlib.Path
) -> None:
    app = inprocess("sqlite", "local")
    reset_database(app.db)
    key = app.create_key("me", "scale", "write")
    svc = app.service(key, str(tmp_path))
    entries = stored_entries(svc, b"s", N)
    changes = [(e.path, e) for e in entries]
    body = json.dumps(
        {
            "name": "big",
            "type": "dataset",
            "distributed_id": "w",
            "changes": changes_to_json(changes),
        }
    ).encode()
    del entries, changes
    with httpx.Client(
        transport=app.transport,
        base_url=app.url,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    ) as client:
        tracemalloc.start()
        try:
            resp = client.post(f"{API}/projects/me/scale/stage", content=body)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert resp.status_code == 200, resp.text
    assert peak < PEAK_MIB * (1 << 20), f"the upsert peaked at {peak / (1 << 20):.1f} MiB"
    # Every change was staged, in one staging per batch of the one transaction.
    vid = resp.json()["id"]
    staged = app.backend.catalog.read(lambda tx: tx.pending.staged_count(vid))
    assert staged == N
