"""Issue 13: start-up, whole process: `import cairn`, `cairn --help`, `cairn --version`, `ls`.

Each command runs as a new process, interleaved with `python -c pass` (the floor: the interpreter
alone) so that both see the same machine load; figures are medians.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks._common import Figure, cairn_command

RUNS = 11


def _time(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def run() -> list[Figure]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "CAIRN_DIR": os.path.join(tmp, "store"),
            "CAIRN_CACHE_DIR": os.path.join(tmp, "cache"),
            "CAIRN_SILENT": "true",
        }
        # A store that exists and is current, so `artifact ls` measures opening, not creating;
        # a small project of three artifacts (five versions) beside an empty one.
        data = os.path.join(tmp, "data")
        os.makedirs(data)
        for i, name in enumerate(["a", "b", "c", "a", "b"]):
            with open(os.path.join(data, "f.txt"), "w") as f:
                f.write(f"content {i}")
            subprocess.run(
                [*cairn_command(), "artifact", "put", data, "-n", f"small/{name}"],
                check=True,
                stdout=subprocess.DEVNULL,
                env=env,
            )
        commands = {
            "python -c pass (floor)": [sys.executable, "-c", "pass"],
            "python -c 'import cairn'": [sys.executable, "-c", "import cairn"],
            "cairn --help": [*cairn_command(), "--help"],
            "cairn --version": [*cairn_command(), "--version"],
            "cairn artifact ls (empty project)": [*cairn_command(), "artifact", "ls", "empty"],
            "cairn artifact ls (small project)": [*cairn_command(), "artifact", "ls", "small"],
        }
        targets = {
            "python -c 'import cairn'": 0.15,
            "cairn --help": 0.25,
            "cairn --version": 0.25,
            "cairn artifact ls (empty project)": 0.25,
            "cairn artifact ls (small project)": 0.25,
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for cmd in commands.values():  # warm the page cache and .pyc files first
            _time(cmd, env)
        for _ in range(RUNS):
            for name, cmd in commands.items():
                times[name].append(_time(cmd, env))
    floor_name = "python -c pass (floor)"
    floor = statistics.median(times[floor_name])
    figures = [Figure(floor_name, floor, "s")]
    for name in list(commands)[1:]:
        value = statistics.median(times[name])
        limit = targets.get(name)
        if limit is None:
            figures.append(Figure(name, value, "s", "pass", floor))
        else:
            figures.append(
                Figure(name, value, "s", "pass", floor, f"target <= {limit} s", value <= limit)
            )
    return figures
