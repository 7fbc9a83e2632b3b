"""Issue 19: `cairn sync` of a store (20,000 x 4 KiB + one large file) to a server on loopback,
against logging the same content through that server directly.

A PostgreSQL cluster and two `cairn server` processes (each its own database and local blob
directory, so neither finds the other's content) run on this machine. The floor, measured in the
same run, is a client process logging the tree and the file through a server; the figure is
another process syncing an embedded store holding that version to the other server. Each process
opens its stores before its clock starts (neither side pays the start). A second sync (nothing
to send) is reported too.
"""

from __future__ import annotations

import os
import shutil

from tests._infra import CairnServer, Postgres

from benchmarks._common import ROOT, Figure, make_tree, ratio_figure, run_child, settle

BIG = int(os.environ.get("CAIRN_BENCH_SYNC_BIG", str(1 << 30)))  # bytes of the large file


def run() -> list[Figure]:
    figures: list[Figure] = []
    tree = make_tree(os.path.join(ROOT, "s1"), 100, 200, 4096)
    big_dir = make_tree(os.path.join(ROOT, f"sync-big-{BIG}"), 1, 1, BIG, seed=3)
    big = os.path.join(big_dir, "d000", "f00000.bin")
    pg = Postgres()
    servers: list[CairnServer] = []
    try:
        for name in ("direct", "synced"):
            blobs = os.path.join(ROOT, f"sync-server-{name}")
            shutil.rmtree(blobs, ignore_errors=True)
            servers.append(CairnServer(pg.create_database(f"bench_sync_{name}"), blobs))
        direct, synced = servers
        store = os.path.join(ROOT, "sync-store")
        shutil.rmtree(store, ignore_errors=True)
        caches = [os.path.join(ROOT, f"sync-cache-{i}") for i in range(3)]
        for cache in caches:
            shutil.rmtree(cache, ignore_errors=True)
        embedded = run_child(
            "_sync_child", "log", tree, big, env={"CAIRN_DIR": store, "CAIRN_CACHE_DIR": caches[0]}
        )["seconds"]
        figures.append(Figure(f"embedded log (20,000 x 4 KiB + {BIG >> 20} MiB)", embedded, "s"))
        settle()
        env = {
            "CAIRN_BASE_URL": direct.url,
            "CAIRN_API_KEY": direct.create_key("bench"),
            "CAIRN_CACHE_DIR": caches[1],
        }
        floor = run_child("_sync_child", "log", tree, big, env=env)["seconds"]
        figures.append(Figure("log the same through a server (floor)", floor, "s"))
        settle()
        key = synced.create_key("bench")
        env = {"CAIRN_CACHE_DIR": caches[2], "CAIRN_ENTITY": "bench"}
        first = run_child("_sync_child", "sync", store, synced.url, key, env=env)
        assert first["copied"] == 1, first
        figures.append(
            # Both timed regions start with their stores open (the log's `current_service()`,
            # the sync's `open_store` twice): the ~0.45 s of opening an embedded store and two
            # HTTP clients is in neither.
            ratio_figure(
                "sync the store to a server (stores opened before the clock, as the log's)",
                first["seconds"],
                "log",
                floor,
                1.0,
            )
        )
        again = run_child("_sync_child", "sync", store, synced.url, key, env=env)
        assert again["copied"] == 0 and again["bytes_sent"] == 0, again
        figures.append(Figure("sync again (nothing to send)", again["seconds"], "s"))
    finally:
        for server in servers:
            server.stop()
        pg.stop()
    return figures
