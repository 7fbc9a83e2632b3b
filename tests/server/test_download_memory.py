"""Issue 14: a download through a server holds a batch of files in memory, not the whole version.

A real server process (PostgreSQL + S3: presigned GETs straight from the object store), and the
download in a fresh child process that reports its own memory (``tests/_peak.py``): its
``VmRSS`` once the SDK is imported and the store opened, and its peak (``VmHWM``) at exit. The
child downloads in batches of 4 MiB (the batch size of the SDK, 48 MiB, lowered so that a few
megabytes show the difference). httpx 0.28 makes every response a reference
cycle with its body stream, so each response and its body were freed only by Python's cyclic
garbage collector, and a download held every file it fetched (VmRSS of a 600-image download grew
36 -> 170 MiB; here 39 MiB for 32 MiB of files, 9 MiB now). Memory use does not depend on the machine's load.
"""

from __future__ import annotations

import json
import os
import pathlib

import pytest

import cairn
from tests._infra import CairnServer, image_tree, reset_database
from tests._peak import run_measured

FILES = 128
FILE_BYTES = 256 << 10  # 32 MiB in all
GROWTH_MIB = 20  # measured: 9 MiB with responses freed as they are done; 39 MiB held to the end

CHILD = """
    import json, sys
    import cairn
    import cairn.sdk._download as download
    from cairn.sdk import current_service

    current_service()  # the store opened (a request to the server): not part of the download
    download._BATCH_BYTES = 4 << 20
    before = status("VmRSS")  # tests/_peak.py's, as the peak written at exit
    with cairn.init(project="memory") as run:
        run.use_artifact("images:latest").download(sys.argv[1])
    print(json.dumps({"before": before}))
"""


def test_a_download_through_a_server_holds_a_batch_not_the_version(
    server_s3: CairnServer, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reset_database(server_s3.db)
    key = server_s3.create_key("tester", "*/*", "write")
    monkeypatch.setenv("CAIRN_BASE_URL", server_s3.url)
    monkeypatch.setenv("CAIRN_API_KEY", key)
    src = image_tree(tmp_path / "images", FILES, FILE_BYTES)
    with cairn.init(project="memory") as run:
        art = cairn.Artifact("images", "dataset")
        art.add_dir(str(src))
        run.log_artifact(art)

    out = tmp_path / "out"
    env = {**os.environ, "CAIRN_CACHE_DIR": str(tmp_path / "child-cache"), "CAIRN_SILENT": "1"}
    peak, stdout = run_measured(CHILD, [str(out)], env, timeout=240)
    mem = {"before": json.loads(stdout.strip().splitlines()[-1])["before"], "peak": peak}
    assert sum(1 for _ in out.rglob("*.jpg")) == FILES
    growth = mem["peak"] - mem["before"]
    assert growth < GROWTH_MIB, f"the download grew by {growth:.0f} MiB ({mem})"
