"""Issues 2 and 13: logging s1 (20,000 x 4 KiB), s2 (4 x 256 MiB) and img (5,000 x 200 KiB,
image-shaped) on the embedded store: new, re-logged unchanged and with one file changed (each a
new process, timed whole), and the store's size on disk.

A re-log is a whole process (``python -m benchmarks._log_child``: init, add_dir, log_artifact,
finish), unchanged and with one file changed, each timed ``RELOGS`` times per fresh store, the
median over both stores reported. The two alternate (unchanged, changed, unchanged, ...), and
each change is a new one (one byte of one file set to a value no version had: every changed
re-log makes a version), so the ratio of the two compares like with like in the same seconds:
measured in two blocks one after the other, it moved by 20-30% with this VM's speed
(docs/design.md, "The one-file change"). Beside them, two floors measured as processes in the
same minutes:
``python -c pass`` and a process that walks and stats every file; the CPU time of the same
processes is printed beside (a loaded machine inflates it less than wall time).
``CAIRN_BENCH_CORE_SETS=s1`` runs only s1 (``s1,img``: those two), e.g.
``CAIRN_BENCH_CORE_SETS=s1 python -m benchmarks core`` for the re-log figures alone.

A first log runs with the default staging (s1 and img: one process per core) and again with
``CAIRN_STAGE_WORKERS=1`` (the logging process alone), so the scaling and the evidence of the
default show; each prints its CPU time beside (the logging process and its workers), which a
loaded machine inflates less than wall time."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

from benchmarks._common import (
    ROOT,
    Figure,
    best_of,
    cp_r,
    data_set,
    disk_usage,
    ratio_figure,
    run_child,
    settle,
    sha256_pass,
    stat_pass,
    tree_bytes,
)

SIZE_LIMIT = 1.1  # du of the whole store directory over the bytes of the files (issue 13, item 4)
RELOGS = 3  # unchanged re-logs timed per fresh store (whole processes; the median is reported)
STAT_PROCESS = (
    "import os, sys\n"
    "for d, _, names in os.walk(sys.argv[1]):\n"
    "    for n in names:\n"
    "        os.stat(os.path.join(d, n))\n"
)

# The durable-write floor: a process that reads every file and writes the same bytes into one
# new file, then fsyncs it; through the page cache (as ``cp`` or ``dd conv=fsync``) or past it
# with O_DIRECT from one aligned buffer (as the store writes packs and blob files). On this
# project's VM a page the page cache takes is faulted in from the host: the first costs ~0.55 s
# of system CPU per 78 MiB, the second ~0.01 s (docs/design.md, "Performance (measured)").
DURABLE_PROCESS = (
    "import mmap, os, sys\n"
    "src, dst, direct = sys.argv[1], sys.argv[2], sys.argv[3] == '1'\n"
    "flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (os.O_DIRECT if direct else 0)\n"
    "out = os.open(dst, flags, 0o644)\n"
    "buf, pos, off = mmap.mmap(-1, 4 << 20), 0, 0\n"
    "for d, dirs, names in os.walk(src):\n"
    "    dirs.sort()\n"
    "    for n in sorted(names):\n"
    "        with open(os.path.join(d, n), 'rb') as f:\n"
    "            data = f.read()\n"
    "        if not direct:\n"
    "            os.write(out, data)\n"
    "            continue\n"
    "        view = memoryview(data)\n"
    "        while view:\n"
    "            k = min(len(view), len(buf) - pos)\n"
    "            buf[pos:pos + k] = view[:k]\n"
    "            pos, view = pos + k, view[k:]\n"
    "            if pos == len(buf):\n"
    "                off += os.pwrite(out, buf, off)\n"
    "                pos = 0\n"
    "if direct and pos:\n"
    "    os.pwrite(out, memoryview(buf)[:-(-pos // 4096) * 4096], off)\n"
    "os.fsync(out)\n"
    "os.close(out)\n"
    "os.unlink(dst)\n"
)


def _children_cpu() -> float:
    """CPU seconds (user + system) of the child processes that ended so far."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _process(cmd: list[str], runs: int) -> tuple[float, float]:
    """Median wall time and median CPU time of ``cmd`` as a new process."""
    times, cpus = [], []
    for _ in range(runs):
        cpu = _children_cpu()
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
        cpus.append(_children_cpu() - cpu)
    return statistics.median(times), statistics.median(cpus)


@contextlib.contextmanager
def _one_byte(path: str) -> Iterator[Callable[[int], None]]:
    """Changes the first byte of ``path`` (``change(k)``: its original value plus ``k``, mod 256)
    and puts it back at the end."""
    with open(path, "rb") as f:
        first = f.read(1)[0]

    def change(k: int) -> None:
        with open(path, "r+b") as f:
            f.write(bytes([(first + k) % 256]))

    try:
        yield change
    finally:
        change(0)


def run() -> list[Figure]:
    figures: list[Figure] = []
    sets = os.environ.get("CAIRN_BENCH_CORE_SETS", "s1,s2,img").split(",")
    s1, s2, img = (data_set(label) if label in sets else "" for label in ("s1", "s2", "img"))
    for label, data, targets in (
        ("s1", s1, {"new": 1.5, "unchanged": 0.35}),
        ("s2", s2, {"new": 1.5}),
        ("img", img, {"new": 2.0, "unchanged": 0.35}),
    ):
        if label not in sets:
            continue
        sha = best_of(3, lambda data=data: sha256_pass(data))
        cp = best_of(
            2, lambda data=data, label=label: cp_r(data, os.path.join(ROOT, f"{label}-cp"))
        )
        store = os.path.join(ROOT, f"store-{label}")
        env = {"CAIRN_DIR": store, "CAIRN_CACHE_DIR": os.path.join(ROOT, f"cache-{label}")}
        first = os.path.join(data, "d000", sorted(os.listdir(os.path.join(data, "d000")))[0])
        # Best of two fresh runs, as for the floors: this machine's disk stalls now and then.
        # Each step is a new process, timed whole (start, imports, opening the store), as a user
        # runs it; "new" is timed inside its process, after creating the store.
        runs = []
        for _ in range(2):
            for path in env.values():
                shutil.rmtree(path, ignore_errors=True)
            settle()
            steps = {}
            relogs: dict[str, list[float]] = {"unchanged": [], "changed": []}
            relog_cpus: dict[str, list[float]] = {"unchanged": [], "changed": []}
            versions = []
            with _one_byte(first) as change:
                for n, step in enumerate(("new", *["unchanged", "changed"] * RELOGS)):
                    if step == "changed":
                        change(n // 2 + 1)  # a value no version had: the re-log makes one
                    cpu = _children_cpu()
                    start = time.perf_counter()
                    steps[step] = run_child("_log_child", step, data, f"{label}-data", env=env)
                    steps[step]["wall"] = time.perf_counter() - start
                    versions.append(steps[step]["version"])
                    if step == "new":  # the store holding this one version: its size on disk
                        used = disk_usage(env["CAIRN_DIR"])
                    if step != "new":
                        relogs[step].append(steps[step]["wall"])
                        relog_cpus[step].append(_children_cpu() - cpu)
            # Every unchanged re-log finds the version before it; every change makes one.
            assert versions[1::2] == versions[0:-1:2], (
                f"an unchanged re-log made a version: {versions}"
            )
            assert len(set(versions)) == RELOGS + 1, f"a change made no version: {versions}"
            runs.append(
                {
                    "new": steps["new"]["seconds"],
                    "new_process": steps["new"]["wall"],
                    "unchanged": relogs["unchanged"],
                    "changed": relogs["changed"],
                    "unchanged_cpu": relog_cpus["unchanged"],
                    "changed_cpu": relog_cpus["changed"],
                    "peak_mib": steps["new"]["peak_mib"],
                    "new_cpu": steps["new"]["cpu"],
                    "du": used,
                }
            )
        res = {
            key: min(r[key] for r in runs)
            for key in ("new", "new_process", "peak_mib", "du", "new_cpu")
        }
        for key in ("unchanged", "changed", "unchanged_cpu", "changed_cpu"):
            res[key] = statistics.median([t for r in runs for t in r[key]])
        # The floors of a re-log, as processes, in the same minutes: starting Python, and
        # starting it to stat every file.
        python_floor, python_cpu = _process([sys.executable, "-c", "pass"], 5)
        stat_floor, stat_cpu = _process([sys.executable, "-c", STAT_PROCESS, data], 3)
        load = os.getloadavg()[0]
        other: dict[str, float] | None = None
        cores = os.cpu_count() or 1
        # The default stages files read whole (under 8 MiB; s2's are streamed) on every core
        # (see design.md, "First logs on every core"); the same first log is run in one
        # process too, so the scaling and the rule's evidence show.
        pooled = label != "s2"
        if pooled and cores > 1:
            forced = {**env, "CAIRN_STAGE_WORKERS": "1"}
            for _ in range(2):
                for path in env.values():
                    shutil.rmtree(path, ignore_errors=True)
                settle()
                step = run_child("_log_child", "new", data, f"{label}-data", env=forced)
                if other is None or step["seconds"] < other["seconds"]:
                    other = step
        figures.append(Figure(f"{label}: SHA-256 pass (floor)", sha, "s"))
        figures.append(Figure(f"{label}: cp -r (floor)", cp, "s"))
        if label in ("s1", "img"):
            scratch = os.path.join(ROOT, f"{label}-durable")
            for how, direct in (("through the page cache", "0"), ("O_DIRECT", "1")):
                settle()
                wall, cpu = _process(
                    [sys.executable, "-c", DURABLE_PROCESS, data, scratch, direct], 3
                )
                name = f"{label}: bytes written + fsync, {how} (process, floor)"
                figures.append(Figure(name, wall, "s", "sha", sha))
                figures.append(Figure(f"{label}: bytes written + fsync, {how}, CPU", cpu, "s"))
        if label == "s1":
            stats = best_of(3, lambda data=data: stat_pass(data))
            figures.append(Figure("s1: os.walk + os.stat of every file", stats, "s", "sha", sha))
        default = f"{cores} staging processes" if pooled and cores > 1 else "1 process"
        figures.append(
            ratio_figure(
                f"{label}: log new (default: {default})",
                res["new"],
                "sha",
                sha,
                targets["new"],
            )
        )
        figures.append(Figure(f"{label}: log new, CPU (process + workers)", res["new_cpu"], "s"))
        if other is not None:
            how = "1 process (CAIRN_STAGE_WORKERS=1)"
            figures.append(Figure(f"{label}: log new, {how}", other["seconds"], "s", "sha", sha))
            figures.append(Figure(f"{label}: log new, {how}, CPU", other["cpu"], "s"))
        figures.append(
            Figure(
                f"{label}: log new (process, creating the store too)",
                res["new_process"],
                "s",
                "sha",
                sha,
            )
        )
        # Re-logs are whole processes (issue 13): an absolute target, the floors beside it.
        figures.append(Figure(f"{label}: python -c pass (process, floor)", python_floor, "s"))
        figures.append(Figure(f"{label}: python -c pass, CPU", python_cpu, "s"))
        figures.append(Figure(f"{label}: walk + stat every file (process, floor)", stat_floor, "s"))
        figures.append(Figure(f"{label}: walk + stat every file, CPU", stat_cpu, "s"))
        for key, what in (
            ("unchanged", f"re-log unchanged (process, median of {2 * RELOGS})"),
            ("changed", f"re-log, 1 file changed (process, median of {2 * RELOGS})"),
        ):
            limit = targets.get(key)
            verdict = None if limit is None else res[key] <= limit
            target = "" if limit is None else f"target <= {limit} s"
            figures.append(
                Figure(f"{label}: {what}", res[key], "s", "stat", stat_floor, target, verdict)
            )
            cpu = res[f"{key}_cpu"]
            figures.append(
                Figure(f"{label}: {what.split(' (')[0]}, CPU", cpu, "s", "stat", stat_cpu)
            )
        print(f"   {label}: re-logs measured at load average {load:.1f}")
        if label == "s1":
            figures.append(
                ratio_figure(
                    "s1: 1 file changed vs unchanged", res["changed"], "unch", res["unchanged"], 1.1
                )
            )
        figures.append(Figure(f"{label}: log vs cp -r", res["new"], "s", "cp", cp))
        data_bytes = tree_bytes(data)
        du_ratio = res["du"] / data_bytes
        figures.append(
            Figure(
                f"{label}: store of the new version on disk (du) / bytes",
                du_ratio,
                "x",
                target=f"target <= {SIZE_LIMIT}x",
                ok=du_ratio <= SIZE_LIMIT,
            )
        )
        if label in ("s1", "img"):
            peak = res["peak_mib"]
            figures.append(
                Figure(
                    f"{label}: peak RSS (largest process)",
                    peak,
                    "MiB",
                    target="target <= 200",
                    ok=peak <= 200,
                )
            )
        shutil.rmtree(store, ignore_errors=True)
    return figures
