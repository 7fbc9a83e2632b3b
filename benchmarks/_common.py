"""Shared helpers: data sets, floors measured in the same run, and the report table."""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".bench")


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    floor_name: str = ""
    floor: float | None = None
    target: str = ""
    ok: bool | None = None

    @property
    def verdict(self) -> str:
        return {True: "met", False: "MISS", None: ""}[self.ok]

    def line(self) -> str:
        ratio = ""
        if self.floor:
            ratio = (
                f"{self.value / self.floor:6.2f}x {self.floor_name} ({self.floor:.3f} {self.unit})"
            )
        return (
            f"  {self.name:<46} {self.value:9.3f} {self.unit:<5} {ratio:<42} {self.target:<18}"
            f" {self.verdict}"
        )


def table(rows: list[tuple[str, Figure]]) -> str:
    """One Markdown table of every figure of the run: each beside its floor (measured in the
    same run), the ratio, the target and whether it was met (MISS when not)."""
    lines = [
        "| suite | figure | measured | floor (same run) | ratio | target | |",
        "|---|---|---|---|---|---|---|",
    ]
    for suite, f in rows:
        floor = f"{f.floor_name} {f.floor:.3f} {f.unit}" if f.floor else ""
        ratio = f"{f.value / f.floor:.2f}x" if f.floor else ""
        target = f.target.removeprefix("target ").strip()
        verdict = "**MISS**" if f.ok is False else f.verdict
        lines.append(
            f"| {suite} | {f.name} | {f.value:.3f} {f.unit} | {floor} | {ratio} | {target}"
            f" | {verdict} |"
        )
    return "\n".join(lines)


def disk_usage(path: str) -> int:
    """What ``du`` counts: the bytes of the blocks every file under ``path`` occupies."""
    total = 0
    for dirpath, _, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


def tree_bytes(path: str) -> int:
    return sum(os.path.getsize(p) for p in list_files(path))


TRASH = os.path.join(ROOT, "trash")


def discard(path: str) -> None:
    """Move ``path`` into ``TRASH``, deleted once every suite ran (``empty_trash``): creating
    files right after a mass delete costs ext4 far more, for many seconds, so a suite that
    deletes many files would slow the next one's first figures."""
    if os.path.lexists(path):
        os.makedirs(TRASH, exist_ok=True)
        os.rename(path, os.path.join(TRASH, f"{time.time_ns()}-{os.path.basename(path)}"))


def empty_trash() -> None:
    shutil.rmtree(TRASH, ignore_errors=True)


def settle() -> None:
    """Flush the page cache and finish the file system's pending work (with the ``discard``
    mount option, deleting a previous run's gigabytes makes the next fsync wait for the TRIMs),
    so that no figure pays for work left over from setting up."""
    os.sync()
    time.sleep(0.5)
    os.sync()


def ratio_figure(name: str, value: float, floor_name: str, floor: float, limit: float) -> Figure:
    return Figure(
        name, value, "s", floor_name, floor, f"target <= {limit}x", value <= limit * floor
    )


def make_tree(path: str, dirs: int, files_per_dir: int, size: int, seed: int = 1) -> str:
    """Files of random content (fast to generate); reused if already there."""
    marker = path.rstrip("/") + ".complete"  # beside the tree, not in it
    if os.path.exists(marker):
        return path
    shutil.rmtree(path, ignore_errors=True)
    rnd = random.Random(seed)
    for d in range(dirs):
        sub = os.path.join(path, f"d{d:03}")
        os.makedirs(sub)
        for f in range(files_per_dir):
            with open(os.path.join(sub, f"f{f:05}.bin"), "wb") as fh:
                left = size
                while left:
                    n = min(left, 16 << 20)
                    fh.write(rnd.randbytes(n))
                    left -= n
    with open(marker, "w") as fh:
        fh.write("ok")
    return path


# Issue 13's data sets: (directories, files per directory, file size, seed), under ROOT.
DATA_SETS = {
    "s1": (100, 200, 4096, 1),  # 20,000 x 4 KiB
    "s2": (1, 4, 256 << 20, 2),  # 4 x 256 MiB
    "img": (50, 100, 200 << 10, 3),  # 5,000 x 200 KiB, image-shaped
}


def data_set(label: str) -> str:
    """The data set ``label`` of ``DATA_SETS`` (made once, then reused)."""
    dirs, files, size, seed = DATA_SETS[label]
    return make_tree(os.path.join(ROOT, label), dirs, files, size, seed=seed)


def list_files(path: str) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        out.extend(os.path.join(dirpath, f) for f in sorted(filenames))
    return out


def sha256_pass(path: str) -> float:
    """The floor: one plain single-threaded SHA-256 pass over every file."""
    files = list_files(path)
    start = time.perf_counter()
    for p in files:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        h.hexdigest()
    return time.perf_counter() - start


@contextlib.contextmanager
def resident(path: str) -> Iterator[None]:
    """Every file under ``path`` held in the page cache while the block runs: mapped (read
    only, populated) by this process. A run that reads a data set from the page cache must not
    find part of it dropped since it was warmed: this machine's kernel pages out page cache it
    sees as cold (a DAMON ``pageout`` scheme for unmapped file pages, not accessed for ~60 s,
    up to 128 MiB a second; pages read once, say by the warm-up, still count as cold), so
    without this, whichever timed run came first after an eviction read those pages from the
    disk (a 512 MiB file left alone for half an hour hashed at 67 MB/s instead of 1.3 GB/s).
    Pages mapped by a process are not paged out by it."""
    maps: list[mmap.mmap] = []
    try:
        for p in list_files(path):
            with open(p, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size:
                    flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
                    maps.append(mmap.mmap(f.fileno(), size, flags=flags, prot=mmap.PROT_READ))
        yield
    finally:
        for m in maps:
            m.close()


def disk_read_bytes() -> int:
    """Bytes this process and its ended children read from storage so far (``getrusage``'s
    512-byte blocks): 0 over a run that found its data set in the page cache."""
    who = (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    return sum(resource.getrusage(w).ru_inblock for w in who) * 512


def alternated(rounds: int) -> list[str]:
    """The order of ``rounds`` runs each of a floor and of ours against one server: pairs in
    ABBA order (floor, ours, ours, floor, floor, ours, ...). A server whose runs get cheaper one
    after another (moto's first large multipart completes are slow, whoever sends them) gives
    each side runs early and late, so the medians compare them in the same state; the floor
    goes first, so the coldest run is one of the floor's, not ours."""
    return [("floor", "ours")[(i + i // 2) % 2] for i in range(2 * rounds)]


def stat_pass(path: str) -> float:
    """What noticing that nothing changed costs at least: one os.stat per file, listing included."""
    start = time.perf_counter()
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            os.stat(os.path.join(dirpath, name))
    return time.perf_counter() - start


def cp_r(path: str, scratch: str) -> float:
    shutil.rmtree(scratch, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run(["cp", "-r", path, scratch], check=True)
    elapsed = time.perf_counter() - start
    shutil.rmtree(scratch, ignore_errors=True)
    return elapsed


def best_of(n: int, fn: Callable[[], float]) -> float:
    return min(fn() for _ in range(n))


def run_child(module: str, *args: str, env: dict[str, str] | None = None) -> dict[str, float]:
    """Run ``python -m benchmarks.<module> args`` and return the JSON it prints last."""
    full_env = {**os.environ, **(env or {}), "CAIRN_SILENT": "true"}
    out = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", *args],
        check=True,
        capture_output=True,
        text=True,
        env=full_env,
        cwd=os.path.dirname(ROOT),
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def with_children(pid: int) -> list[int]:
    """Process ``pid`` and its live children (a server's workers, PostgreSQL's backends)."""
    pids = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            pids += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return pids


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` and its live children so far, from
    ``/proc``."""
    total = 0.0
    for p in with_children(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def process_seconds(cmd: list[str], env: dict[str, str] | None = None, runs: int = 3) -> float:
    """Median wall time of ``cmd`` as a new process (what a user feels: start, imports, work)."""
    full_env = {**os.environ, **(env or {}), "CAIRN_SILENT": "true"}
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=full_env)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def cairn_command() -> list[str]:
    """The ``cairn`` console script of this interpreter (``python -m cairn`` if not installed)."""
    script = os.path.join(os.path.dirname(sys.executable), "cairn")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "cairn"]
