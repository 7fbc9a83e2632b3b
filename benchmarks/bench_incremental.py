"""Issue 4: a draft (add one, remove one, replace one) of a 1,000,000-entry version, and diff."""

from __future__ import annotations

import os
import shutil
import sys
import time

from benchmarks._common import ROOT, Figure, cairn_command, process_seconds, run_child


def run() -> list[Figure]:
    env = {
        "CAIRN_DIR": os.path.join(ROOT, "store-incr"),
        "CAIRN_CACHE_DIR": os.path.join(ROOT, "cache-incr"),
    }
    for path in env.values():
        shutil.rmtree(path, ignore_errors=True)
    start = time.perf_counter()
    run_child("_incr_child", "build", "1000000", "big", env=env)
    built = time.perf_counter() - start
    run_child("_incr_child", "build", "10000", "small", env=env)
    small = min(
        (run_child("_incr_child", "time", "small", env=env) for _ in range(3)),
        key=lambda r: r["commit"],
    )
    big = min(
        (run_child("_incr_child", "time", "big", env=env) for _ in range(3)),
        key=lambda r: r["commit"],
    )
    mem = run_child("_incr_child", "trace", "big", env=env)
    # What a user feels: each a new process (start, imports, opening the store, the work).
    floor = process_seconds([sys.executable, "-c", "pass"])
    diff_process = process_seconds(
        [*cairn_command(), "artifact", "diff", "bench/big:v0", "big:v1"], env
    )
    resolve = (
        "import cairn; a = cairn.Api(overrides={'project': 'bench'}).artifact('big:latest');"
        " assert a.file_count >= 1_000_000"
    )
    resolve_process = process_seconds([sys.executable, "-c", resolve], env)
    for path in env.values():
        shutil.rmtree(path, ignore_errors=True)
    return [
        Figure("(building the 1,000,000-entry version, not timed)", built, "s"),
        Figure("draft commit, 10,000 entries", small["commit"], "s"),
        Figure(
            "draft commit, 1,000,000 entries",
            big["commit"],
            "s",
            target="target <= 0.050",
            ok=big["commit"] <= 0.05,
        ),
        Figure(
            "draft commit, 1M vs 10k",
            big["commit"],
            "s",
            "10k",
            small["commit"],
            "target <= 2x",
            big["commit"] <= 2 * small["commit"],
        ),
        Figure(
            "diff of the two 1M versions",
            big["diff"],
            "s",
            target="target <= 0.020",
            ok=big["diff"] <= 0.02,
        ),
        Figure(
            "diff of two 1M versions, `cairn artifact diff` (process)",
            diff_process,
            "s",
            "pass",
            floor,
        ),
        Figure(
            "resolve big:latest, `Api().artifact` (process)", resolve_process, "s", "pass", floor
        ),
        Figure(
            "peak memory of the 1M commit (tracemalloc)",
            mem["peak_mib"],
            "MiB",
            target="target <= 100",
            ok=mem["peak_mib"] <= 100,
        ),
    ]
