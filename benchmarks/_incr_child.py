"""Child process for the incremental benchmark."""

from __future__ import annotations

import json
import os
import sys
import time
import tracemalloc
import warnings


def build(n: int, name: str) -> None:
    """A version with ``n`` entries sharing a few blobs (building is not timed)."""
    from cairn.core import ManifestEntry, digest_bytes
    from cairn.sdk import current_service
    from cairn.service import CommitRequest

    svc = current_service()
    blobs = [f"content {i}".encode() for i in range(64)]
    svc.store_blobs([(digest_bytes(b), b) for b in blobs])
    digests = [digest_bytes(b) for b in blobs]
    entries = [
        ManifestEntry(f"d{i // 1000:04}/f{i:07}.txt", digests[i % 64], len(blobs[i % 64]))
        for i in range(n)
    ]
    result = svc.commit(
        CommitRequest(
            entity=svc.default_entity,
            project="bench",
            name=name,
            type="dataset",
            changes=[(e.path, e) for e in entries],
        )
    )
    assert result.version is not None and result.version.file_count == n


def change(name: str, trace: bool) -> dict[str, float]:
    import cairn

    with open("new_file.txt", "w") as f:
        f.write(f"brand new {time.time()}")
    with open("replacement.txt", "w") as f:
        f.write(f"replaced {time.time()}")
    with cairn.init(project="bench", job_type="modify") as run:
        base = run.use_artifact(f"{name}:v0")
        if trace:
            tracemalloc.start()
        start = time.perf_counter()
        draft = base.new_draft()
        draft.add_file("new_file.txt", name="added/new_file.txt")
        draft.remove("d0000/f0000001.txt")
        draft.add_file("replacement.txt", name="d0000/f0000002.txt", overwrite=True)
        run.log_artifact(draft)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] / (1 << 20) if trace else 0.0
        if trace:
            tracemalloc.stop()
        assert draft.version != base.version
        api = cairn.Api(overrides={"project": "bench"})
        start = time.perf_counter()
        diff = api.diff(base, draft)
        diff_seconds = time.perf_counter() - start
        assert len(diff.added) == 1 and len(diff.removed) == 1 and len(diff.modified) == 1, diff
    return {"commit": seconds, "diff": diff_seconds, "peak_mib": peak}


def main() -> None:
    warnings.simplefilter("ignore")
    role = sys.argv[1]
    if role == "build":
        build(int(sys.argv[2]), sys.argv[3])
        print(json.dumps({"ok": 1}))
    else:
        work = os.path.join(os.environ["CAIRN_DIR"], "..", "incr-work")
        os.makedirs(work, exist_ok=True)
        os.chdir(work)
        print(json.dumps(change(sys.argv[2], trace=role == "trace")))


if __name__ == "__main__":
    main()
