"""Issue 3: 8 processes each upserting 2,500 of s1's files, then finish, vs one process logging all."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

from benchmarks._common import ROOT, Figure, make_tree, run_child


def _env(tag: str, s1: str) -> dict[str, str]:
    """A fresh store, made by a process of its own before the timed ones start (as a job's
    processes find their store made): neither side's figure includes creating it."""
    store, cache = os.path.join(ROOT, f"store-{tag}"), os.path.join(ROOT, f"cache-{tag}")
    shutil.rmtree(store, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)
    env = {**os.environ, "CAIRN_DIR": store, "CAIRN_CACHE_DIR": cache, "CAIRN_SILENT": "true"}
    subprocess.run(
        [sys.executable, "-m", "benchmarks._dist_child", "create", s1],
        env=env,
        cwd=os.path.dirname(ROOT),
        check=True,
    )
    return env


def run() -> list[Figure]:
    s1 = make_tree(os.path.join(ROOT, "s1"), 100, 200, 4096)
    dirs = sorted(d for d in os.listdir(s1) if d.startswith("d"))
    single_env = _env("dist-single", s1)
    start = time.perf_counter()
    single = run_child("_dist_child", "single", s1, env=single_env)
    single_wall = time.perf_counter() - start

    env = _env("dist-many", s1)
    go = os.path.join(ROOT, "dist-go")
    if os.path.exists(go):
        os.remove(go)
    shards = [dirs[i::8] for i in range(8)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "benchmarks._dist_child", "upsert", s1, go, *shard],
            env=env,
            cwd=os.path.dirname(ROOT),
            stdout=subprocess.PIPE,
            text=True,
        )
        for shard in shards
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    open(go, "w").close()
    t0 = time.time()
    results = []
    for p in procs:
        out, _ = p.communicate()
        assert p.returncode == 0
        results.append(json.loads(out.strip().splitlines()[-1]))
    upserts = max(r["end"] for r in results) - t0
    fin = run_child("_dist_child", "finish", s1, env=env)
    many = upserts + fin["seconds"]
    os.remove(go)
    assert fin["files"] == single["files"] == 20_000, (fin, single)
    shutil.rmtree(env["CAIRN_DIR"], ignore_errors=True)
    shutil.rmtree(single_env["CAIRN_DIR"], ignore_errors=True)
    imports = sum(r["import"] for r in results) / len(results)
    cpu = sum(r["cpu"] for r in results) + fin["cpu"]
    heavy = sum(bool(r["sqlalchemy"]) for r in (*results, fin, single))
    return [
        Figure("one process logs 20,000 files", single["seconds"], "s"),
        Figure(
            "8 processes upsert 2,500 each, then finish",
            many,
            "s",
            "single",
            single["seconds"],
            "target <= 1.5x",
            many <= 1.5 * single["seconds"],
        ),
        Figure(
            "finish_artifact, 20,000 staged entries",
            fin["seconds"],
            "s",
            target="target <= 0.5",
            ok=fin["seconds"] <= 0.5,
        ),
        Figure("one process logs 20,000 files, CPU", single["cpu"], "s"),
        Figure("8 upserts + finish, CPU of the 9 processes", cpu, "s", "single", single["cpu"]),
        Figure("(timed processes that imported SQLAlchemy, of 10)", heavy, ""),
        Figure("(not counted: import + opening the store, per worker)", imports, "s"),
        Figure("(wall, single process incl. start)", single_wall, "s"),
    ]
