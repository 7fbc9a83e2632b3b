"""Issue 14: an upload through a server holds a few batches of files in memory, not more.

A real server process (PostgreSQL + a local blob directory), and the upload of image-sized files
(all read whole and sent many per request) in a fresh child process that reports its own memory
from ``/proc/self/status``: ``VmRSS`` once the SDK is imported and the store opened, and
``VmHWM`` (this process's own high-water mark) once the version is logged. The stager holds the
files it read in buffers of ``REMOTE_FLUSH_BYTES`` for a remote store, at most three at once (one
filling, two being sent); each request's body is packed as it is sent. Before, buffers of 32 MiB
(the embedded store's) and a packed copy of every 8 MiB request in flight: 80 MiB of files grew
the process by 164 MiB (a 2,000-image log peaked at 221 MiB); now by 60. Memory use does not
depend on the machine's load.
"""

from __future__ import annotations

import json
import os
import pathlib
import random
import subprocess
import sys
import textwrap

from tests._infra import CairnServer, reset_database

FILES = 320
FILE_BYTES = 256 << 10  # 80 MiB in all: more than the three buffers hold
GROWTH_MIB = 90

CHILD = """
    import json, sys
    import cairn
    from cairn.sdk import current_service

    def status(field):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024

    current_service()  # the store opened (a request to the server): not part of the upload
    before = status("VmRSS")
    with cairn.init(project="memory") as run:
        art = cairn.Artifact("images", "dataset")
        art.add_dir(sys.argv[1])
        run.log_artifact(art)
    print(json.dumps({"before": before, "peak": status("VmHWM")}))
"""


def test_an_upload_through_a_server_holds_a_few_batches(
    server_local: CairnServer, tmp_path: pathlib.Path
) -> None:
    reset_database(server_local.db)
    key = server_local.create_key("tester", "*/*", "write")
    rng = random.Random(14)
    src = tmp_path / "images"
    for i in range(FILES):
        path = src / f"c{i % 8}" / f"img{i:04}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(FILE_BYTES))
    env = {
        **os.environ,
        "CAIRN_BASE_URL": server_local.url,
        "CAIRN_API_KEY": key,
        "CAIRN_CACHE_DIR": str(tmp_path / "cache"),
        "CAIRN_SILENT": "1",
    }
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CHILD), str(src)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    mem = json.loads(done.stdout.strip().splitlines()[-1])
    growth = mem["peak"] - mem["before"]
    assert growth < GROWTH_MIB, f"the upload grew by {growth:.0f} MiB ({mem})"
