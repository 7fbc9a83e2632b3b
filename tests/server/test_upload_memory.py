"""Issue 14: an upload through a server holds a few batches of files in memory, not more.

A real server process (PostgreSQL + a local blob directory), and the upload of image-sized files
(all read whole and sent many per request) in a fresh child process measured by ``tests/_peak.py``:
its ``VmRSS`` once the SDK is imported and the store opened, and its peak at exit (its own
``VmHWM``, or a staging worker's if larger: 59 MiB of growth either way). The stager holds the
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

from tests._infra import CairnServer, image_tree, reset_database
from tests._peak import run_measured

FILES = 320
FILE_BYTES = 256 << 10  # 80 MiB in all: more than the three buffers hold
GROWTH_MIB = 90

CHILD = """
    import json, sys
    import cairn
    from cairn.sdk import current_service

    current_service()  # the store opened (a request to the server): not part of the upload
    before = status("VmRSS")  # tests/_peak.py's, as the peak written at exit
    with cairn.init(project="memory") as run:
        art = cairn.Artifact("images", "dataset")
        art.add_dir(sys.argv[1])
        run.log_artifact(art)
    print(json.dumps({"before": before}))
"""


def test_an_upload_through_a_server_holds_a_few_batches(
    server_local: CairnServer, tmp_path: pathlib.Path
) -> None:
    reset_database(server_local.db)
    key = server_local.create_key("tester", "*/*", "write")
    src = image_tree(tmp_path / "images", FILES, FILE_BYTES)
    env = {
        **os.environ,
        "CAIRN_BASE_URL": server_local.url,
        "CAIRN_API_KEY": key,
        "CAIRN_CACHE_DIR": str(tmp_path / "cache"),
        "CAIRN_SILENT": "1",
    }
    peak, stdout = run_measured(CHILD, [str(src)], env, timeout=240)
    mem = {"before": json.loads(stdout.strip().splitlines()[-1])["before"], "peak": peak}
    growth = mem["peak"] - mem["before"]
    assert growth < GROWTH_MIB, f"the upload grew by {growth:.0f} MiB ({mem})"
