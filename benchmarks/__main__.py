"""``make bench``: every benchmark, then one table of every figure beside the floor measured in
the same run, the ratio, the target, and MISS where a target is missed.

``python -m benchmarks [name ...]`` runs some of them (core, distributed, incremental, ...). The
table is also written to ``.bench/last-table.md``.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
import time
import traceback

from benchmarks._common import ROOT, Figure, empty_trash, table

SUITES = [
    "start",
    "core",
    "distributed",
    "incremental",
    "server",
    "sync",
    "ui",
    "search",
    "fs",
    "scale",
]


def compile_cairn() -> None:
    """Compile cairn's modules to bytecode first, as installing a package does: with
    PYTHONDONTWRITEBYTECODE set (CI, some shells) every process would otherwise compile them
    again from source, ~0.1 s of CPU that no installed cairn pays."""
    import compileall

    import cairn

    compileall.compile_dir(os.path.dirname(cairn.__file__), quiet=1)


def main(argv: list[str]) -> int:
    wanted = argv or SUITES
    compile_cairn()
    rows: list[tuple[str, Figure]] = []
    for name in wanted:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        print(f"== {name}: {module.__doc__.strip().splitlines()[0] if module.__doc__ else ''}")
        start = time.perf_counter()
        try:
            figures = module.run()
        except Exception as exc:  # noqa: BLE001 - one suite that cannot run is a row, not the end
            traceback.print_exc()
            figures = [Figure(f"suite did not run: {type(exc).__name__}: {exc}", 0.0, "", ok=False)]
        for fig in figures:
            print(fig.line(), flush=True)
            rows.append((name, fig))
        print(f"   ({time.perf_counter() - start:.0f} s)")
    missed = [f for _, f in rows if f.ok is False]
    load = os.getloadavg()
    head = (
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.node()},"
        f" {os.cpu_count()} cores, load average at the end {load[0]:.1f} / {load[1]:.1f}"
        f" / {load[2]:.1f}; {len(rows) - len(missed)} figures met or without a target,"
        f" {len(missed)} MISS"
    )
    empty_trash()  # what suites discarded, deleted after the last figure
    out = f"{head}\n\n{table(rows)}\n"
    print("\n" + out)
    os.makedirs(ROOT, exist_ok=True)
    with open(os.path.join(ROOT, "last-table.md"), "w") as f:
        f.write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
