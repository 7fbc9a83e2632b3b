"""Issue 16: search and the versions table of the web UI on a store with 100,000 versions
(SQLite: the web UI over HTTP and Service.search; PostgreSQL: Service.search)."""

from __future__ import annotations

from benchmarks._common import Figure
from benchmarks.bench_ui import run_search, run_search_postgres


def run() -> list[Figure]:
    return run_search() + run_search_postgres()
