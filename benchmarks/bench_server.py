"""Issue 6: s1 and s2 logged through a server on loopback (local-disk and S3), vs the embedded store.

Everything is real and on this machine: a PostgreSQL cluster, moto's S3 server, and `cairn server`
processes (uvicorn); the client is another process. Floors are measured in the same run: the
embedded store logging the same data, and for S3 moto's own PUT speed (boto3, no cairn).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time

from tests._infra import CairnServer, Postgres, S3Server

from benchmarks._common import ROOT, Figure, make_tree, ratio_figure, run_child, sha256_pass

RESOLVE_CLIENT = """
    import sys, time
    import cairn
    from cairn.sdk import current_service
    svc = current_service()
    entity = svc.default_entity
    deadline = time.perf_counter() + float(sys.argv[1])
    n = 0
    svc.resolve(entity, "bench", "meta", None)
    start = time.perf_counter()
    while time.perf_counter() < deadline:
        svc.resolve(entity, "bench", "meta", None)
        n += 1
    print(n / (time.perf_counter() - start))
"""


def _moto_put_floor(s3: S3Server, data: str) -> float:
    client = s3.client()
    files = [os.path.join(dp, f) for dp, _, fs in os.walk(data) for f in fs if f != ".complete"]
    start = time.perf_counter()
    for i, path in enumerate(files):
        with open(path, "rb") as f:
            client.put_object(Bucket=s3.bucket, Key=f"floor/{i}", Body=f)
    elapsed = time.perf_counter() - start
    client.close()
    return elapsed


def _resolves_per_second(server: CairnServer, key: str, clients: int, seconds: float) -> float:
    env = {
        **os.environ,
        "CAIRN_BASE_URL": server.url,
        "CAIRN_API_KEY": key,
        "CAIRN_SILENT": "true",
        "CAIRN_CACHE_DIR": os.path.join(ROOT, "cache-meta"),
    }
    setup = (
        "import cairn\nwith cairn.init(project='bench') as run:\n"
        "    a = cairn.Artifact('meta', 'dataset')\n"
        "    with a.new_file('x.txt', mode='w') as f:\n        f.write('x')\n"
        "    run.log_artifact(a)\n"
    )
    subprocess.run([sys.executable, "-c", setup], env=env, check=True, cwd=ROOT)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(RESOLVE_CLIENT), str(seconds)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(clients)
    ]
    return sum(float(p.communicate()[0].strip()) for p in procs)


def _log(step: str, data: str, label: str, first: str, env: dict[str, str]) -> tuple[float, float]:
    """One step of ``_log_child`` as a new process: (the log's own time, the whole process's)."""
    start = time.perf_counter()
    res = run_child("_log_child", step, data, f"{label}-data", first, env=env)
    return res["seconds"], time.perf_counter() - start


def run() -> list[Figure]:
    figures: list[Figure] = []
    s1 = make_tree(os.path.join(ROOT, "s1"), 100, 200, 4096)
    s2 = make_tree(os.path.join(ROOT, "s2"), 1, 4, 256 << 20, seed=2)
    pg = Postgres()
    s3 = S3Server()
    servers: list[CairnServer] = []
    try:
        local_store = os.path.join(ROOT, "server-blobs")
        shutil.rmtree(local_store, ignore_errors=True)
        backends = {
            "local": CairnServer(pg.create_database("bench_local"), local_store),
            "s3": CairnServer(pg.create_database("bench_s3"), s3.url("bench"), s3.env),
        }
        servers.extend(backends.values())
        for label, data, mb in (("s1", s1, 20_000 * 4096 / 1e6), ("s2", s2, 4 * 256 * 1.048576)):
            first = os.path.join(data, "d000", sorted(os.listdir(os.path.join(data, "d000")))[0])
            sha256_pass(data)  # every run below reads the files from a warm page cache
            store = os.path.join(ROOT, f"store-{label}")
            shutil.rmtree(store, ignore_errors=True)
            env = {"CAIRN_DIR": store, "CAIRN_CACHE_DIR": os.path.join(ROOT, f"cache-{label}")}
            shutil.rmtree(env["CAIRN_CACHE_DIR"], ignore_errors=True)  # "new" means unseen files
            embedded = _log("new", data, label, first, env)[0]
            shutil.rmtree(store, ignore_errors=True)
            figures.append(Figure(f"{label}: embedded log new (floor)", embedded, "s"))
            if label == "s2":
                floor = _moto_put_floor(s3, data)
                figures.append(Figure("s2: moto's own PUT, boto3 (S3 floor)", mb / floor, "MB/s"))
            for name, server in backends.items():
                key = server.create_key(f"bench{label}")
                cache = os.path.join(ROOT, f"cache-{label}-{name}")
                shutil.rmtree(cache, ignore_errors=True)
                env = {"CAIRN_BASE_URL": server.url, "CAIRN_API_KEY": key, "CAIRN_CACHE_DIR": cache}
                new = _log("new", data, label, first, env)[0]
                if label == "s1":
                    unchanged = _log("unchanged", data, label, first, env)[1]
                    figures.append(
                        ratio_figure(f"s1: server ({name}) log new", new, "embedded", embedded, 3.0)
                    )
                    figures.append(
                        Figure(f"s1: server ({name}) re-log unchanged (process)", unchanged, "s")
                    )
                else:
                    rate = mb / new
                    figures.append(
                        Figure(
                            f"s2: server ({name}) log new",
                            rate,
                            "MB/s",
                            target="target >= 300",
                            ok=rate >= 300,
                        )
                    )
        two = CairnServer(
            backends["local"].db, local_store, {"CAIRN_SERVER_WORKERS": "2"}, migrate=False
        )
        servers.append(two)
        for label, server in (("1 server process", backends["local"]), ("--workers 2", two)):
            key = server.create_key(f"meta{len(figures)}")
            rate = _resolves_per_second(server, key, 8, 5.0)
            figures.append(
                Figure(
                    f"resolve name:latest, 8 clients ({label})",
                    rate,
                    "/s",
                    target="target >= 500",
                    ok=rate >= 500,
                )
            )
    finally:
        for server in servers:
            server.stop()
        s3.stop()
        pg.stop()
    return figures
