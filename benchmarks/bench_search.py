"""Issue 16: search and the versions table of the web UI on a store with 100,000 versions."""

from __future__ import annotations

from benchmarks._common import Figure
from benchmarks.bench_ui import run_search


def run() -> list[Figure]:
    return run_search()
