"""Issue 18: memory does not grow with the file count (the 100,000-file sibling of bench_scale).

A tree of 100,000 tiny files is logged and downloaded by fresh processes; each one's peak RSS
(measured from outside, by the kernel, for the child) must stay within a bound that the code
before streaming broke (it peaked at ~280 MiB logging this tree, ~2.3 KB per file). Memory, unlike
time, does not depend on how loaded the machine is, so the bounds hold on a busy CI runner.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = [pytest.mark.xdist_group("scale-memory"), pytest.mark.timeout(600)]

FILES = 100_000
PER_DIR = 500
# Above the memory of a process that only imports cairn and opens the store (measured by the
# test, ~54 MiB), at most this many MiB. Measured with streaming: 88 MiB logging (117 MiB for a
# million files, see docs/design.md) and 4 MiB downloading; before it, 223 and 87 MiB.
LOG_ABOVE_FLOOR_MIB = 130
DOWNLOAD_ABOVE_FLOOR_MIB = 40

CHILD = textwrap.dedent(
    """
    import json, os, resource, sys, warnings
    warnings.simplefilter("ignore")
    step, tree, dest = sys.argv[1:4]
    import cairn
    if step == "base":
        from cairn.sdk import current_service
        current_service()
    elif step == "log":
        with cairn.init(project="scale") as run:
            art = cairn.Artifact("big", "dataset")
            art.add_dir(tree)
            run.log_artifact(art)
        print(json.dumps({"count": art.file_count, "digest": art.digest}))
    else:
        art = cairn.Api(overrides={"project": "scale"}).artifact("big:latest")
        art.download(dest)
        print(json.dumps({"count": art.file_count, "digest": art.digest}))
    """
)


def _make_tree(root: str) -> None:
    for d in range(FILES // PER_DIR):
        sub = os.path.join(root, f"d{d:04}")
        os.makedirs(sub)
        for f in range(PER_DIR):
            with open(os.path.join(sub, f"f{f:04}.txt"), "w") as fh:
                fh.write(f"{d}.{f}\n")


def _peak_mib(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Run a child and return its peak RSS (MiB, from the kernel) and its output."""
    # RUSAGE_CHILDREN is the largest of all children waited for so far: run each step in a
    # grandchild behind a small reporter process so that earlier steps do not count.
    reporter = (
        "import resource, subprocess, sys\n"
        "out = subprocess.run(sys.argv[1:], check=True, capture_output=True, text=True).stdout\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(peak); print(out, end='')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", reporter, sys.executable, "-c", CHILD, *args],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout.splitlines()
    return float(out[0]), out[-1] if len(out) > 1 else ""


def test_a_100k_file_tree_logs_and_downloads_in_bounded_memory(tmp_path: object) -> None:
    base_dir = str(tmp_path)
    tree = os.path.join(base_dir, "tree")
    _make_tree(tree)
    env = {
        **os.environ,
        "CAIRN_DIR": os.path.join(base_dir, "store"),
        "CAIRN_CACHE_DIR": os.path.join(base_dir, "cache"),
        "CAIRN_SILENT": "true",
    }
    for var in ("CAIRN_BASE_URL", "CAIRN_API_KEY"):
        env.pop(var, None)
    floor, _ = _peak_mib(["base", tree, ""], env)
    logged, out = _peak_mib(["log", tree, ""], env)
    result = json.loads(out)
    assert result["count"] == FILES
    assert logged - floor <= LOG_ABOVE_FLOOR_MIB, (logged, floor)
    dest = os.path.join(base_dir, "out")
    downloaded, out = _peak_mib(["download", tree, dest], env)
    assert json.loads(out)["digest"] == result["digest"]
    assert downloaded - floor <= DOWNLOAD_ABOVE_FLOOR_MIB, (downloaded, floor)
    # What came down is the tree (spot checks: the full verify is bench_scale's).
    for d, f in ((0, 0), (117, 333), (FILES // PER_DIR - 1, PER_DIR - 1)):
        with open(os.path.join(dest, f"d{d:04}", f"f{f:04}.txt")) as fh:
            assert fh.read() == f"{d}.{f}\n"
    assert sum(len(files) for _, _, files in os.walk(dest)) == FILES
