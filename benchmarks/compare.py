"""Issue 13's independent check: cairn beside git, DVC and W&B's client on the same data sets,
each operation of each tool a whole process, medians of ``--runs`` runs (each run a fresh
store, repository and cache), beside floors measured as processes in the same run (a
single-threaded SHA-256 pass over every file, ``cp -r``).

    python -m benchmarks.compare [--sets s1,img] [--runs 3] [--tools cairn,git,dvc,wandb]
                                 [--venv .bench/compare-venv] [--out .bench/compare.json]

``make bench-compare`` installs W&B's client and DVC (pinned) into their own venv first; a tool
that is missing or fails is a row saying so. Prints one table (tool x operation: median,
min-max, the ratio to the SHA-256 floor, CPU, the tool's bytes on disk after the step) and
writes every measurement to the JSON file. docs/benchmarks.md says what each tool does per
operation.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any

from benchmarks.__main__ import compile_cairn
from benchmarks._common import ROOT, data_set, disk_usage, list_files, settle
from benchmarks._compare_tools import OPS, Tool, all_tools

SHA_PROCESS = (
    "import hashlib, os, sys\n"
    "for d, dirs, names in os.walk(sys.argv[1]):\n"
    "    dirs.sort()\n"
    "    for n in sorted(names):\n"
    "        h = hashlib.sha256()\n"
    "        with open(os.path.join(d, n), 'rb') as f:\n"
    "            while chunk := f.read(1 << 20):\n"
    "                h.update(chunk)\n"
    "        h.hexdigest()\n"
)
FLOORS = ("SHA-256 pass (process, floor)", "cp -r (process, floor)")
TOOL_KEYS = {
    "cairn": ("cairn (CLI)", "cairn (script)"),
    "cairn-cli": ("cairn (CLI)",),
    "cairn-script": ("cairn (script)",),
    "git": ("git",),
    "dvc": ("DVC",),
    "wandb": ("W&B client (offline)",),
}


def _children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def timed(cmd: list[str], cwd: str, env: dict[str, str]) -> dict[str, Any]:
    """Run ``cmd`` as a new process: wall and CPU seconds, or why it failed."""
    cpu = _children_cpu()
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    except OSError as exc:  # no such program: a failure of the tool, reported as one
        return {"error": f"{type(exc).__name__}: {exc}"}
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {proc.returncode}: {' / '.join(tail)[-300:]}"}
    return {"seconds": wall, "cpu": _children_cpu() - cpu}


def floors(data: str, work: str, runs: int, flush: bool) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in FLOORS}
    copy = os.path.join(work, "cp-floor")
    for _ in range(runs):
        if flush:
            settle()
        out[FLOORS[0]].append(timed([sys.executable, "-c", SHA_PROCESS, data], work, {}))
        shutil.rmtree(copy, ignore_errors=True)
        out[FLOORS[1]].append(timed(["cp", "-r", data, copy], work, {}))
        shutil.rmtree(copy, ignore_errors=True)
    return out


def _flip(path: str) -> bytes:
    """Change the first byte of ``path`` (same size); returns the old one."""
    with open(path, "r+b") as f:
        old = f.read(1)
        f.seek(0)
        f.write(bytes([(old[0] + 1) % 256]))
    return old


def _restore(path: str, old: bytes) -> None:
    with open(path, "r+b") as f:
        f.write(old)


def run_tool(
    tool: Tool, data: str, work: str, label: str, runs: int, flush: bool
) -> dict[str, Any]:
    """Every step of ``tool``, ``runs`` times on fresh stores: {op: [measurement, ...]};
    ``flush``: the page cache flushed before each run (``settle``)."""
    why = tool.missing()
    if why is not None:
        return {"missing": why}
    tree = tool.tree(data, work)
    changed = list_files(tree)[0]
    results: dict[str, list[dict[str, Any]]] = {}
    for n in range(runs):
        run = os.path.join(work, "runs", f"{tool.name.split()[0].lower()}-{n}")
        shutil.rmtree(run, ignore_errors=True)
        os.makedirs(run)
        env = {**os.environ, **tool.env(run)}
        if flush:
            settle()
        failed = ""
        for step in tool.steps(tree, run, label):
            if failed:
                results.setdefault(step.op, []).append({"error": f"not run: {failed}"})
                continue
            os.makedirs(step.cwd, exist_ok=True)
            for cmd in step.setup:
                done = timed(cmd, step.cwd, env)
                if "error" in done:
                    failed = f"set-up {' '.join(cmd[:3])} failed: {done['error']}"
            if failed:
                results.setdefault(step.op, []).append({"error": failed})
                continue
            old = _flip(changed) if step.op == OPS[2] else None
            try:
                got = timed(step.cmd, step.cwd, env)
            finally:
                if old is not None:
                    _restore(changed, old)
            got["bytes"] = sum(disk_usage(p) for p in tool.footprint(tree, run))
            results.setdefault(step.op, []).append(got)
            if "error" in got:
                failed = f"{step.op} failed"
        shutil.rmtree(run, ignore_errors=True)
    return results


def summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Median, min and max of the measurements (an error if any run failed)."""
    errors = [s["error"] for s in samples if "error" in s]
    if errors:
        return {"error": errors[0], "runs": len(samples)}
    walls = [s["seconds"] for s in samples]
    return {
        "median": statistics.median(walls),
        "min": min(walls),
        "max": max(walls),
        "cpu": statistics.median(s["cpu"] for s in samples),
        "bytes": statistics.median(s.get("bytes", 0) for s in samples),
        "runs": len(samples),
    }


def table(result: dict[str, Any]) -> str:
    lines = [
        "| data | tool | operation | median | min-max | x SHA-256 | CPU | on disk after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, one in result["sets"].items():
        sha = one["floors"][FLOORS[0]].get("median")
        rows: list[tuple[str, str, dict[str, Any]]] = [
            ("floor", name.split(" (")[0], one["floors"][name]) for name in FLOORS
        ]
        for tool, ops in one["tools"].items():
            if "missing" in ops:
                rows.append((tool, "(all)", {"error": f"missing: {ops['missing']}"}))
                continue
            rows += [(tool, op, ops.get(op, {"error": "not available"})) for op in OPS]
        for tool, op, s in rows:
            if "error" in s:
                lines.append(f"| {label} | {tool} | {op} | {s['error']} | | | | |")
                continue
            ratio = f"{s['median'] / sha:.2f}x" if sha else ""
            size = f"{s['bytes'] / 2**20:.1f} MiB" if s.get("bytes") else ""
            lines.append(
                f"| {label} | {tool} | {op} | {s['median']:.3f} s | {s['min']:.3f}-{s['max']:.3f}"
                f" | {ratio} | {s['cpu']:.2f} s | {size} |"
            )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__)
    parser.add_argument("--sets", default="s1,img")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tools", default="cairn,git,dvc,wandb")
    parser.add_argument("--venv", default=os.path.join(ROOT, "compare-venv"))
    parser.add_argument("--out", default=os.path.join(ROOT, "compare.json"))
    parser.add_argument("--workdir", default=os.path.join(ROOT, "compare"))
    parser.add_argument("--tree", help="a directory to use as the one data set (tests)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="no compiling of cairn first, no page-cache flush before each run (tests)",
    )
    args = parser.parse_args(argv)
    if not args.quick:
        compile_cairn()  # as installing does: no process compiles cairn's modules again
    wanted = {name for key in args.tools.split(",") for name in TOOL_KEYS[key]}
    tools = [t for t in all_tools(os.path.abspath(args.venv)) if t.name in wanted]
    sets = {"tree": args.tree} if args.tree else {s: data_set(s) for s in args.sets.split(",")}
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    result: dict[str, Any] = {"sets": {}, "tools": {t.name: t.what for t in tools}}
    for label, data in sets.items():
        work = os.path.join(args.workdir, label)
        os.makedirs(work, exist_ok=True)
        one: dict[str, Any] = {"files": len(list_files(data)), "tools": {}, "samples": {}}
        measured = floors(data, work, args.runs, not args.quick)
        one["floors"] = {name: summary(s) for name, s in measured.items()}
        one["samples"]["floors"] = measured
        for tool in tools:
            print(f"   {label}: {tool.name} ...", flush=True)
            got = run_tool(tool, data, work, label, args.runs, not args.quick)
            one["samples"][tool.name] = got
            if "missing" in got:
                one["tools"][tool.name] = got
            else:
                one["tools"][tool.name] = {op: summary(s) for op, s in got.items()}
                one["tools"][tool.name] |= {
                    op: {"error": why} for op, why in tool.unavailable.items()
                }
        result["sets"][label] = one
    load = os.getloadavg()
    result["head"] = (
        f"{started}, {platform.node()}, {os.cpu_count()} cores, load average at the end"
        f" {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}; medians of {args.runs} runs"
    )
    text = f"{result['head']}\n\n{table(result)}\n"
    print("\n" + text)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
