"""Issue 18: a million tiny files logged, re-logged, drafted, downloaded and verified in bounded
memory, and a distributed version of a million staged entries finished.

The tree (``CAIRN_BENCH_SCALE_FILES`` files, default 1,000,000, of a few bytes each, 500 per
directory) is made once under .bench/ and reused. Every step is a new process, as a user runs it;
each figure is the step's time and the peak RSS of its whole process tree (the client process,
and through a server the server process too). Floors measured in the same run: ``cp -r`` of the
tree into an empty directory, and the RSS of a process that only imports cairn and opens the
store. Through a server (PostgreSQL + local blob store) the tree is ``CAIRN_BENCH_SCALE_SERVER_FILES``
files (default: the same); the server's peak is reset before each step. Each step is labelled
with the machine's load average before and after it. ``CAIRN_BENCH_SCALE_TREES`` names a
directory holding trees made by another checkout's run (``scale-N`` + ``scale-N.complete``),
read only. ``CAIRN_BENCH_SCALE_SKIP`` (comma-separated: ``relog``, ``draft``, ``cp``) leaves
those steps out, to reach the later ones sooner (the first log always runs: the others need its
version; without ``cp`` the download has no floor to compare with).
"""

from __future__ import annotations

import os
import shutil
import sys

from benchmarks._common import ROOT, Figure, cp_r, run_child, settle, with_children

PER_DIR = 500
LOG_MIB = 300.0  # the bound for the first log of 1,000,000 files
FILES_PER_S = 15_000.0


def make_tiny_tree(path: str, files: int) -> str:
    marker = path.rstrip("/") + ".complete"
    if os.path.exists(marker):
        return path
    shutil.rmtree(path, ignore_errors=True)
    for d in range((files + PER_DIR - 1) // PER_DIR):
        sub = os.path.join(path, f"d{d:05}")
        os.makedirs(sub)
        for f in range(min(PER_DIR, files - d * PER_DIR)):
            with open(os.path.join(sub, f"f{f:04}.txt"), "w") as fh:
                fh.write(f"{d}.{f}\n")
    with open(marker, "w") as fh:
        fh.write("ok")
    return path


def _server_hwm_mib(pid: int) -> float:
    """Peak RSS of a server process and its children (VmHWM from /proc) since the last
    ``_reset_server_hwm``, MiB."""
    total = 0.0
    for p in with_children(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return total


def _reset_server_hwm(pid: int) -> None:
    """Start the server's peak RSS again from its current RSS (Linux: ``5`` into clear_refs),
    so that each step's figure is that step's peak, not the highest of every step so far."""
    for p in with_children(pid):
        try:
            with open(f"/proc/{p}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass


def _load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def _steps(
    label: str, tree: str, files: int, env: dict[str, str], server_pid: int | None
) -> list[Figure]:
    figures: list[Figure] = []
    scratch = os.path.join(ROOT, f"scale-{label}-out")
    shutil.rmtree(scratch, ignore_errors=True)
    base = run_child("_scale_child", "base", tree, "big", scratch, env=env)["peak_mib"]
    figures.append(Figure(f"{label}: import + open store, peak RSS (floor)", base, "MiB"))

    if server_pid is not None:
        # The server's own peak so far (it has started and answered a key request): part of
        # the floor. Before each step its high-water mark is reset, so each step's figure is
        # the client's peak plus the server's peak during that step.
        server_floor = _server_hwm_mib(server_pid)
        base += server_floor
        figures.append(
            Figure(f"{label}: server process after start, peak RSS", server_floor, "MiB")
        )

    def step(name: str, *args: str) -> dict[str, float]:
        if server_pid is not None:
            _reset_server_hwm(server_pid)
        before = _load()
        res = run_child("_scale_child", *args, env=env)
        when = f"{before}, {_load()} after"
        # Progress as it goes (the table comes at the end; a million files take a while).
        print(
            f"   {label} {name}: {res['seconds']:.1f} s, {res['peak_mib']:.0f} MiB ({when})",
            file=sys.stderr,
            flush=True,
        )
        if server_pid is not None:
            server = _server_hwm_mib(server_pid)
            figures.append(
                Figure(
                    f"{label}: {name}: client {res['peak_mib']:.0f} + server ({when})",
                    server,
                    "MiB",
                )
            )
            res["peak_mib"] += server
        else:
            figures.append(Figure(f"{label}: {name}: machine's {when}", os.getloadavg()[0], ""))
        return res

    first = step("log", "log", tree, "big", scratch)
    rate = files / first["seconds"]
    per_file = (first["peak_mib"] - base) * (1 << 20) / files
    figures += [
        Figure(f"{label}: first log of {files:,} files", first["seconds"], "s"),
        Figure(
            f"{label}: first log, files/s",
            rate,
            "f/s",
            target=f"target >= {FILES_PER_S:,.0f}",
            ok=rate >= FILES_PER_S if files >= 1_000_000 else None,
        ),
        Figure(
            f"{label}: first log, peak RSS",
            first["peak_mib"],
            "MiB",
            target=f"target <= {LOG_MIB:.0f}",
            ok=first["peak_mib"] <= LOG_MIB,
        ),
        Figure(f"{label}: first log, memory per file above floor", per_file, "B"),
    ]
    skip = set(os.environ.get("CAIRN_BENCH_SCALE_SKIP", "").split(","))
    if "relog" not in skip:
        again = step("relog", "log", tree, "big", scratch)
        figures.append(Figure(f"{label}: re-log (unchanged), seconds", again["seconds"], "s"))
        figures.append(Figure(f"{label}: re-log, peak RSS", again["peak_mib"], "MiB"))
    if "draft" not in skip:
        draft = step("draft", "draft", tree, "big", os.path.join(ROOT, f"scale-{label}-one"))
        figures.append(Figure(f"{label}: one-file draft, seconds", draft["seconds"], "s"))
        figures.append(Figure(f"{label}: one-file draft, peak RSS", draft["peak_mib"], "MiB"))
    floor_cp = None
    if "cp" not in skip:
        # The floor right before the download, so both meet the same machine (the disk's speed
        # under other work varies by several times within minutes).
        settle()
        floor_cp = cp_r(tree, scratch)
        figures.append(Figure(f"{label}: `cp -r` of the tree (floor, {_load()})", floor_cp, "s"))
        settle()
    down = step("download", "download", tree, "big", scratch)
    figures += [
        Figure(
            f"{label}: download into an empty directory",
            down["seconds"],
            "s",
            "cp -r" if floor_cp is not None else "",
            floor_cp,
            "target <= 3x" if floor_cp is not None else "",
            down["seconds"] <= 3 * floor_cp if floor_cp is not None else None,
        ),
        Figure(
            f"{label}: download, peak RSS",
            down["peak_mib"],
            "MiB",
            target=f"target <= {LOG_MIB:.0f}",
            ok=down["peak_mib"] <= LOG_MIB,
        ),
    ]
    check = step("verify", "verify", tree, "big", scratch)
    figures.append(Figure(f"{label}: verify the download, seconds", check["seconds"], "s"))
    figures.append(Figure(f"{label}: verify, peak RSS", check["peak_mib"], "MiB"))
    staged = step("distributed: stage", "dist-stage", tree, "big", scratch)
    figures.append(
        Figure(f"{label}: distributed, every entry upserted (50,000 each)", staged["seconds"], "s")
    )
    done = step("distributed: finish", "dist-finish", tree, "big", scratch)
    figures += [
        Figure(f"{label}: distributed finish of {files:,} staged entries", done["seconds"], "s"),
        Figure(
            f"{label}: distributed finish, peak RSS",
            done["peak_mib"],
            "MiB",
            target=f"target <= {LOG_MIB:.0f}",
            ok=done["peak_mib"] <= LOG_MIB,
        ),
    ]
    shutil.rmtree(scratch, ignore_errors=True)
    return figures


def _tree(files: int) -> str:
    """The tree of ``files`` files: made once under .bench/ (or ``CAIRN_BENCH_SCALE_TREES``, a
    directory where another checkout made them: they are only read)."""
    elsewhere = os.environ.get("CAIRN_BENCH_SCALE_TREES")
    if elsewhere and os.path.exists(os.path.join(elsewhere, f"scale-{files}.complete")):
        return os.path.join(elsewhere, f"scale-{files}")
    return make_tiny_tree(os.path.join(ROOT, f"scale-{files}"), files)


def run() -> list[Figure]:
    files = int(os.environ.get("CAIRN_BENCH_SCALE_FILES", "1000000"))
    server_files = int(os.environ.get("CAIRN_BENCH_SCALE_SERVER_FILES", str(files)))
    tree = _tree(files)
    env = {
        "CAIRN_DIR": os.path.join(ROOT, "store-scale"),
        "CAIRN_CACHE_DIR": os.path.join(ROOT, "cache-scale"),
    }
    for path in env.values():
        shutil.rmtree(path, ignore_errors=True)
    figures = _steps("embedded", tree, files, env, None)
    for path in env.values():
        shutil.rmtree(path, ignore_errors=True)
    if server_files > 0:
        from tests._infra import CairnServer, Postgres

        server_tree = _tree(server_files)
        pg = Postgres()
        store = os.path.join(ROOT, "scale-server-blobs")
        shutil.rmtree(store, ignore_errors=True)
        server = None
        try:
            server = CairnServer(pg.create_database("bench_scale"), store)
            cache = os.path.join(ROOT, "cache-scale-server")
            shutil.rmtree(cache, ignore_errors=True)
            env = {
                "CAIRN_BASE_URL": server.url,
                "CAIRN_API_KEY": server.create_key("scale"),
                "CAIRN_CACHE_DIR": cache,
            }
            assert server.proc is not None
            figures += _steps("server", server_tree, server_files, env, server.proc.pid)
        finally:
            if server is not None:
                server.stop()
            pg.stop()
            shutil.rmtree(store, ignore_errors=True)
    return figures
