"""Several processes using one embedded store at the same time."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import cairn

WORKER = textwrap.dedent(
    """
    import sys
    import cairn
    n = int(sys.argv[1])
    for i in range(int(sys.argv[2])):
        with cairn.init(project="race") as run:
            art = cairn.Artifact("shared", "dataset")
            with art.new_file("f.txt", mode="w") as f:
                f.write(f"worker {n} item {i}")
            run.log_artifact(art)
    """
)


@pytest.mark.process_server
def test_processes_logging_at_once_get_dense_unique_versions() -> None:
    workers, per_worker = 6, 4
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(n), str(per_worker)], stderr=subprocess.PIPE
        )
        for n in range(workers)
    ]
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err.decode()
        assert b"database is locked" not in err
    versions = cairn.Api(overrides={"project": "race"}).artifacts("dataset", "shared")
    numbers = sorted(int(a.version[1:]) for a in versions)
    assert numbers == list(range(workers * per_worker))
    assert len({a.digest for a in versions}) == workers * per_worker
    assert os.environ["CAIRN_DIR"]
