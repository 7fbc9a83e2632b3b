"""``python -m benchmarks.compare`` (issue 13's independent check): on a tiny tree, cairn's CLI
and git as whole processes beside the SHA-256 and ``cp -r`` floors, one run; W&B's client and
DVC without their venv are rows that say they are missing."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_the_harness_measures_each_tool_as_a_process_and_reports_missing_ones(
    tmp_path: pathlib.Path,
) -> None:
    if shutil.which("git") is None:
        pytest.skip("no git binary here: the harness would report git as missing")
    tree = tmp_path / "tree"
    for d in range(2):
        (tree / f"d{d}").mkdir(parents=True)
        for f in range(3):
            (tree / f"d{d}" / f"f{f}.bin").write_bytes(os.urandom(3000))
    out = tmp_path / "compare.json"
    args = ["--tree", str(tree), "--runs", "1", "--quick", "--tools", "cairn-cli,git,dvc,wandb"]
    args += ["--venv", str(tmp_path / "no-venv"), "--workdir", str(tmp_path / "work")]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.compare", *args, "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.read_text())
    one = result["sets"]["tree"]
    assert one["files"] == 6
    for floor in one["floors"].values():
        assert floor["median"] > 0 and floor["runs"] == 1
    for tool in ("cairn (CLI)", "git"):
        ops = one["tools"][tool]
        assert set(ops) == {
            "log new",
            "re-log unchanged",
            "re-log, 1 file changed",
            "fetch into a new directory",
        }
        for op in ops.values():
            assert "error" not in op, op
            assert op["median"] > 0 and op["cpu"] > 0
        # The fetch wrote the files (the run's directory holds the store and the copy).
        assert ops["fetch into a new directory"]["bytes"] >= 6 * 3000
    # One new commit per log in git; cairn's store holds the first version's bytes at least.
    assert one["tools"]["cairn (CLI)"]["log new"]["bytes"] >= 6 * 3000
    assert one["tools"]["DVC"]["missing"].startswith("no ")
    assert one["tools"]["W&B client (offline)"]["missing"].startswith("no ")
    table = done.stdout
    assert "| tree | cairn (CLI) | log new |" in table and "| tree | git | fetch" in table
    assert "| tree | DVC | (all) | missing: no " in table
    assert "x SHA-256" in table
