"""``make bench``: every benchmark, each figure printed beside the floor measured in this run.

``python -m benchmarks [name ...]`` runs some of them (core, distributed, incremental, ...).
"""

from __future__ import annotations

import importlib
import sys
import time

SUITES = ["start", "core", "distributed", "incremental", "server", "sync", "ui", "search", "fs"]


def main(argv: list[str]) -> int:
    wanted = argv or SUITES
    for name in wanted:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        print(f"== {name}: {module.__doc__.strip().splitlines()[0] if module.__doc__ else ''}")
        start = time.perf_counter()
        for fig in module.run():
            print(fig.line(), flush=True)
        print(f"   ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
