"""Several processes using one embedded store at the same time."""

from __future__ import annotations

import os
import textwrap

import pytest

import cairn
from tests._forked import run_workers

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
    # Forked from one process that imported cairn once (tests/_forked.py).
    for w in run_workers(WORKER, [[str(n), str(per_worker)] for n in range(workers)], timeout=180):
        assert w.returncode == 0, w.stderr.decode()
        assert b"database is locked" not in w.stderr
    versions = cairn.Api(overrides={"project": "race"}).artifacts("dataset", "shared")
    numbers = sorted(int(a.version[1:]) for a in versions)
    assert numbers == list(range(workers * per_worker))
    assert len({a.digest for a in versions}) == workers * per_worker
    assert os.environ["CAIRN_DIR"]
