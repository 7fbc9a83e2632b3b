"""Issue 18's independent check, outside the bench harness: a tree of N tiny files (N // 500
directories of 500) logged with ``cairn artifact put`` and downloaded with ``cairn artifact get``,
each a fresh process, and ``cp -r`` of the tree in the same run; peak memory from outside (the
process tree's summed RSS sampled every 0.1 s from /proc, and GNU time's maximum when
/usr/bin/time exists); then 2,000 random files of the download compared with the tree.

    python -m benchmarks.scale_check WORKDIR [FILES]     (FILES: 1,000,000 by default)

WORKDIR holds the tree (kept for the next run), the store and the download (deleted first).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time


def tree_rss_kib(pid: int) -> int:
    """Summed VmRSS (KiB) of ``pid`` and its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        try:
            with open(f"/proc/{current}/status") as f:
                total += next((int(x.split()[1]) for x in f if x.startswith("VmRSS:")), 0)
        except OSError:
            pass
    return total


def step(name: str, command: list[str], env: dict[str, str]) -> None:
    """Run ``command`` as a fresh process; print its wall time, CPU and peak memory."""
    timed = ["/usr/bin/time", "-f", "%U %S %M"] if os.path.exists("/usr/bin/time") else []
    load = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.Popen(
        timed + command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss_kib(proc.pid))
        time.sleep(0.1)
    wall = time.perf_counter() - start
    err = proc.stderr.read() if proc.stderr else ""
    if proc.returncode != 0:
        sys.exit(f"{name} failed ({proc.returncode}): {err}")
    extra = ""
    if timed:
        user, system, max_kib = err.split()[-3:]
        extra = f", user {user} s, sys {system} s, GNU time's max RSS {int(max_kib) / 1024:.0f} MiB"
    print(
        f"{name}: {wall:.1f} s (load {load:.1f}), peak RSS of the process tree {peak / 1024:.0f} MiB{extra}"
    )


def make_tree(root: str, files: int) -> None:
    if os.path.exists(root + ".complete"):
        return
    shutil.rmtree(root, ignore_errors=True)
    for d in range(files // 500):
        folder = os.path.join(root, f"d{d:04d}")
        os.makedirs(folder)
        for i in range(500):
            with open(os.path.join(folder, f"f{i:03d}.txt"), "w") as f:
                f.write(f"{d}-{i}\n")
    open(root + ".complete", "w").close()


def main(workdir: str, files: int) -> None:
    tree, out, copy = (os.path.join(workdir, n) for n in ("tree", "out", "cp"))
    make_tree(tree, files)
    for path in ("store", "cache", "out", "cp"):
        shutil.rmtree(os.path.join(workdir, path), ignore_errors=True)
    env = {
        **os.environ,
        "CAIRN_DIR": os.path.join(workdir, "store"),
        "CAIRN_CACHE_DIR": os.path.join(workdir, "cache"),
        "CAIRN_PROJECT": "scale",
        "CAIRN_SILENT": "true",
    }
    cairn = [sys.executable, "-m", "cairn", "artifact"]
    print(f"{files:,} files of a few bytes in {files // 500:,} directories")
    step("cairn artifact put", [*cairn, "put", tree, "-n", "scale/big"], env)
    step("cairn artifact get", [*cairn, "get", "scale/big:latest", "--root", out], env)
    step("cp -r (floor)", ["cp", "-r", tree, copy], env)
    shutil.rmtree(copy)
    count = sum(len(names) for _, _, names in os.walk(out))
    rng = random.Random(7)
    differ = 0
    for _ in range(2000):
        rel = f"d{rng.randrange(files // 500):04d}/f{rng.randrange(500):03d}.txt"
        with open(os.path.join(tree, rel), "rb") as a, open(os.path.join(out, rel), "rb") as b:
            differ += a.read() != b.read()
    print(f"downloaded {count:,} files; 2,000 random files compared with the tree: {differ} differ")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000)
