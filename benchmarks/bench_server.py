"""Issues 6 and 14: data sets through a server on loopback (local-disk and S3), vs their floors.

Everything is real and on this machine: a PostgreSQL cluster, moto's S3 server, and `cairn server`
processes (uvicorn); the client is another process. Floors are measured in the same run: the
embedded store with the same data, and the S3 server's own speed with boto3 (no cairn).

Issue 14 (``transfers``): an image-shaped set (``BENCH_IMAGES`` files of 150-250 KiB, 2,000 by
default) and one large file (``BENCH_LARGE_MIB``, 512 by default) up and down through a server
with 2 workers on PostgreSQL + S3, beside boto3's 8 parallel PUTs/GETs of the same files and its
managed multipart transfer of the large file (up: three runs of each, alternated on the same S3
server, each figure their median: ``_rounds.large_rounds``). ``BENCH_SERVER_ONLY=transfers``
runs only those; ``BENCH_SERVER_ONLY=resolve`` only ``resolve name:latest`` (8 clients, 1 and 2
server processes); ``BENCH_SERVER_ONLY=s1`` only s1's logs (the embedded floor and ours through
a server, local and S3, alternated over three rounds: each figure the median) and its downloads
(issue 14 item 3: a new process, its download cache empty, beside the embedded store's download
of the same version).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

from tests._infra import CairnServer, Postgres, S3Server

from benchmarks._common import (
    ROOT,
    Figure,
    cpu_seconds,
    discard,
    list_files,
    make_tree,
    ratio_figure,
    resident,
    run_child,
    settle,
    sha256_pass,
)
from benchmarks._rounds import large_rounds

PEAK_MIB = {"up": 120, "down": 200}  # a client process's, whatever the data set's size
LARGE_ROUNDS = 3  # runs of ours and of the floor each, alternated; each figure their median

RESOLVE_CLIENT = """
    import os, sys, time
    import cairn
    from cairn.sdk import current_service
    svc = current_service()
    entity = svc.default_entity
    svc.resolve(entity, "bench", "meta", None)
    time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # every client starts at once
    deadline = time.perf_counter() + float(sys.argv[1])
    n = 0
    cpu = os.times()
    start = time.perf_counter()
    while time.perf_counter() < deadline:
        svc.resolve(entity, "bench", "meta", None)
        n += 1
    end = os.times()
    print(n, n / (time.perf_counter() - start), end.user - cpu.user + end.system - cpu.system)
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


def _resolves_per_second(
    server: CairnServer, pg: Postgres, key: str, clients: int, seconds: float
) -> tuple[float, dict[str, float]]:
    """Resolves a second from ``clients`` processes, and the CPU milliseconds per resolve of
    the clients, the server (its workers) and PostgreSQL over the same seconds (all on the
    same cores: the rate is bound by their sum)."""
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
    assert server.proc is not None
    begin = time.time() + 5.0  # the clients' imports and first request are done by then
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(RESOLVE_CLIENT), str(seconds), str(begin)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(clients)
    ]
    time.sleep(max(0.0, begin - time.time()))
    before = cpu_seconds(server.proc.pid), cpu_seconds(pg.pid)
    outs = [p.communicate()[0].split() for p in procs]
    after = cpu_seconds(server.proc.pid), cpu_seconds(pg.pid)
    count = sum(int(o[0]) for o in outs)
    per = 1e3 / max(count, 1)
    cpu = {
        "clients": sum(float(o[2]) for o in outs) * per,
        "server": (after[0] - before[0]) * per,
        "PostgreSQL": (after[1] - before[1]) * per,
    }
    return sum(float(o[1]) for o in outs), cpu


def _log(step: str, data: str, label: str, first: str, env: dict[str, str]) -> tuple[float, float]:
    """One step of ``_log_child`` as a new process: (the log's own time, the whole process's)."""
    start = time.perf_counter()
    res = run_child("_log_child", step, data, f"{label}-data", first, env=env)
    return res["seconds"], time.perf_counter() - start


def _download(label: str, out: str, env: dict[str, str]) -> dict[str, float]:
    """``label``'s latest version downloaded by a new process (``_transfer_child``: the store
    opened before the clock) into the new directory ``out``, its download cache empty. Nothing
    is deleted here: right after a mass delete ext4 creates files far slower, for longer than
    we can wait (s1 embedded: 0.8-2.2 s, then 9.7-13 s right after another download's 20,000
    files were deleted, 6 s of wait or not); the caller discards them all at the end."""
    settle()
    return run_child("_transfer_child", "down", out, f"{label}-data", env=env)


def _download_figures(name: str, res: dict[str, float], floor: float) -> list[Figure]:
    """A download through a server beside the embedded store's (issue 14 item 3: <= 3x, issue
    6's ratio for a log through a server), with the client's CPU and peak RSS."""
    peak = res["peak_mib"]
    return [
        ratio_figure(name, res["seconds"], "embedded", floor, 3.0),
        Figure(f"{name}, client CPU", res["cpu"], "s"),
        Figure(
            f"{name}, client peak RSS",
            peak,
            "MiB",
            target=f"target <= {PEAK_MIB['down']}",
            ok=peak <= PEAK_MIB["down"],
        ),
    ]


def _images(path: str, count: int) -> str:
    """``count`` image-shaped files (150-250 KiB of random bytes), 100 per directory."""
    marker = f"{path}-{count}.complete"
    if os.path.exists(marker):
        return path
    shutil.rmtree(path, ignore_errors=True)
    rnd = random.Random(14)
    for i in range(count):
        sub = os.path.join(path, f"class{i // 100:03}")
        os.makedirs(sub, exist_ok=True)
        with open(os.path.join(sub, f"img{i:05}.jpg"), "wb") as f:
            f.write(rnd.randbytes(rnd.randrange(150 << 10, 250 << 10)))
    with open(marker, "w") as f:
        f.write("ok")
    return path


def _boto_floor(s3: S3Server, files: list[str], prefix: str) -> tuple[float, float]:
    """The S3 server's own time to take ``files`` as objects (8 PUTs at a time) and to give
    them back (8 GETs at a time), with boto3."""
    from botocore.config import Config

    client = s3.client(Config(max_pool_connections=16))

    def put(item: tuple[int, str]) -> None:
        with open(item[1], "rb") as f:
            client.put_object(Bucket=s3.bucket, Key=f"{prefix}/{item[0]}", Body=f)

    def get(item: tuple[int, str]) -> None:
        body = client.get_object(Bucket=s3.bucket, Key=f"{prefix}/{item[0]}")["Body"]
        with open(os.path.join(ROOT, "floor-get.tmp"), "wb") as f:
            f.write(body.read())

    items = list(enumerate(files))
    start = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, items))
    up = time.perf_counter() - start
    start = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(get, items))
    down = time.perf_counter() - start
    client.close()
    return up, down


def _transfers(pg: Postgres, s3: S3Server) -> list[Figure]:
    """Issue 14: an image-shaped set and one large file, up and down, beside their floors."""
    figures: list[Figure] = []
    count = int(os.environ.get("BENCH_IMAGES", "2000"))
    large_mib = int(os.environ.get("BENCH_LARGE_MIB", "512"))
    images = _images(os.path.join(ROOT, "images"), count)
    files = list_files(images)
    image_mb = sum(os.path.getsize(f) for f in files) / 1e6
    larges = [  # one file for each round (``large_rounds``), each its own content
        make_tree(
            os.path.join(ROOT, f"large-{large_mib}{f'-{k}' if k else ''}"),
            1,
            1,
            large_mib << 20,
            seed=14 + k,
        )
        for k in range(LARGE_ROUNDS)
    ]
    server = CairnServer(
        pg.create_database("bench_transfers"),
        s3.url("transfers"),
        {**s3.env, "CAIRN_SERVER_WORKERS": "2"},
    )
    held = contextlib.ExitStack()
    try:
        for label, sets, floors in (
            (f"images ({count} x ~200 KiB, {image_mb:.0f} MB)", [images], "images"),
            (f"large file ({large_mib} MiB)", larges, "large"),
        ):
            data = sets[0]
            for each in sets:
                # Every run, ours and the floors, reads the files from memory: warmed, and kept
                # there (``resident``: this host pages out page cache left alone for ~60 s)
                held.enter_context(resident(each))
                sha256_pass(each)
            tag = "img" if floors == "images" else "large"
            embedded_env = {
                "CAIRN_DIR": os.path.join(ROOT, f"store-{tag}"),
                "CAIRN_CACHE_DIR": os.path.join(ROOT, f"cache-{tag}-embedded"),
            }
            for d in embedded_env.values():
                shutil.rmtree(d, ignore_errors=True)
            out = os.path.join(ROOT, f"out-{tag}")
            key = server.create_key(f"bench{tag}")
            cache = os.path.join(ROOT, f"cache-{tag}-server")
            shutil.rmtree(cache, ignore_errors=True)
            server_env = {
                "CAIRN_BASE_URL": server.url,
                "CAIRN_API_KEY": key,
                "CAIRN_CACHE_DIR": cache,
            }
            times: dict[str, float] = {}
            peaks: dict[str, float] = {}
            sides = [("embedded", embedded_env)]
            if floors == "images":  # the large file through the server: in rounds, below
                sides.append(("server", server_env))
            for where, env in sides:
                for way, path in (("up", data), ("down", out)):
                    if way == "down":
                        shutil.rmtree(out, ignore_errors=True)
                        shutil.rmtree(env["CAIRN_CACHE_DIR"], ignore_errors=True)  # none cached
                    settle()
                    res = run_child("_transfer_child", way, path, tag, env=env)
                    times[f"{where} {way}"] = res["seconds"]
                    peaks[f"{where} {way}"] = res["peak_mib"]
                shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(embedded_env["CAIRN_DIR"], ignore_errors=True)
            settle()
            if floors == "images":
                s3_up, s3_down = _boto_floor(s3, files, "floor-images")
            else:
                runs = large_rounds(s3, "transfers/", larges, server_env, out)
                shutil.rmtree(out, ignore_errors=True)
                s3_up, s3_down = (
                    statistics.median(runs["floor up"]),
                    statistics.median(runs["floor down"]),
                )
                for way in ("up", "down"):
                    times[f"server {way}"] = statistics.median(runs[f"ours {way}"])
                    peaks[f"server {way}"] = max(runs[f"ours {way} peak_mib"])
            for way, floor in (("up", s3_up), ("down", s3_down)):
                # The client process's own peak (VmHWM), not its parent's: bounded by batches
                # and parts in flight, whatever the data set's size. Up, the stager's buffers
                # (three of 16 MiB at most; bodies packed as they are sent): ~100 MiB.
                peak = peaks[f"server {way}"]
                figures.append(
                    Figure(
                        f"{label}: server {way}, client peak RSS",
                        peak,
                        "MiB",
                        target=f"target <= {PEAK_MIB[way]}",
                        ok=peak <= PEAK_MIB[way],
                    )
                )
                value = times[f"server {way}"]
                floor_name = "boto3 8 parallel" if floors == "images" else "boto3 multipart"
                figures.append(Figure(f"{label}: embedded {way}", times[f"embedded {way}"], "s"))
                if floors == "images":
                    figures.append(
                        Figure(
                            f"{label}: server {way}",
                            value,
                            "s",
                            f"S3 {floor_name}",
                            floor,
                            "target <= 1.5x",
                            value <= 1.5 * floor,
                        )
                    )
                    figures.append(
                        Figure(
                            f"{label}: server {way} vs embedded",
                            value,
                            "s",
                            "embedded",
                            times[f"embedded {way}"],
                        )
                    )
                else:
                    rate, floor_rate = large_mib * 1.048576 / value, large_mib * 1.048576 / floor
                    figures.append(
                        Figure(
                            f"{label}: server {way}",
                            rate,
                            "MB/s",
                            f"S3 {floor_name}",
                            floor_rate,
                            "target >= 0.8x",
                            rate >= 0.8 * floor_rate,
                        )
                    )
    finally:
        held.close()
        server.stop()
    return figures


def _resolves(
    one: CairnServer, pg: Postgres, store: str, servers: list[CairnServer]
) -> list[Figure]:
    """``resolve name:latest`` per second, 8 client processes, against ``one`` (a server
    process) and a server of 2 workers on the same catalog (added to ``servers``), each with
    the CPU it cost per resolve."""
    figures: list[Figure] = []
    two = CairnServer(one.db, store, {"CAIRN_SERVER_WORKERS": "2"}, migrate=False)
    servers.append(two)
    for label, server in (("1 server process", one), ("--workers 2", two)):
        key = server.create_key(f"meta{len(figures)}")
        rate, cpu = _resolves_per_second(server, pg, key, 8, 5.0)
        figures.append(
            Figure(
                f"resolve name:latest, 8 clients ({label})",
                rate,
                "/s",
                target="target >= 500",
                ok=rate >= 500,
            )
        )
        for who, ms in cpu.items():
            figures.append(Figure(f"  CPU per resolve: {who} ({label})", ms, "ms"))
    return figures


S1_ROUNDS = 3


def _s1(
    data: str, pg: Postgres, s3: S3Server, servers: list[CairnServer], dirs: list[str]
) -> list[Figure]:
    """s1's first logs: the embedded store's (the floor) and ours through a server (local, S3),
    alternated over ``S1_ROUNDS`` rounds (each round's order the last one's reversed), each a
    new process and each of ours on a new server database and store (a log of blobs the server
    has is not a first log); each figure the median of its rounds, which are printed. A single
    log of each moved the ratio 2.4-4.0x between seven quiet runs (docs/design.md: the same work
    costs up to a fifth more CPU from one moment to the next on this host, and the floor was
    measured ~15 s before ours). Then an unchanged re-log and the downloads, on the last round's
    server and store."""
    first = os.path.join(data, "d000", sorted(os.listdir(os.path.join(data, "d000")))[0])
    sha256_pass(data)  # every run below reads the files from a warm page cache
    store = os.path.join(ROOT, "store-s1")
    emb_env = {"CAIRN_DIR": store, "CAIRN_CACHE_DIR": os.path.join(ROOT, "cache-s1")}
    logs: dict[str, list[float]] = {"embedded": [], "local": [], "s3": []}
    last: dict[str, tuple[CairnServer, dict[str, str]]] = {}
    for r in range(S1_ROUNDS):
        for side in list(logs) if r % 2 == 0 else list(logs)[::-1]:
            if side == "embedded":
                for d in emb_env.values():
                    discard(d)  # "new": a new store, unseen files; no delete between logs
                logs[side].append(_log("new", data, "s1", first, emb_env)[0])
                continue
            db = pg.create_database(f"bench_s1_{side}_{r}")
            if side == "s3":
                server = CairnServer(db, s3.url(f"bench-s1-{r}"), s3.env)
            else:
                blobs = os.path.join(ROOT, f"server-blobs-s1-{r}")
                discard(blobs)
                dirs.append(blobs)
                server = CairnServer(db, blobs)
            servers.append(server)
            if side in last:
                last[side][0].stop()  # the last round's: its store and cache are kept
            cache = os.path.join(ROOT, f"cache-s1-{side}")
            discard(cache)
            env = {"CAIRN_BASE_URL": server.url, "CAIRN_API_KEY": server.create_key("bench")}
            env["CAIRN_CACHE_DIR"] = cache
            last[side] = server, env
            logs[side].append(_log("new", data, "s1", first, env)[0])
    print(
        "   s1 log new, each round (s): "
        + "; ".join(
            f"{side} " + " ".join(f"{v:.3f}" for v in values) for side, values in logs.items()
        )
    )
    embedded = statistics.median(logs["embedded"])
    figures = [Figure("s1: embedded log new (floor)", embedded, "s")]
    download_env = {**emb_env, "CAIRN_CACHE_DIR": emb_env["CAIRN_CACHE_DIR"] + "-dl"}
    for name in ("local", "s3"):
        env = last[name][1]
        new = statistics.median(logs[name])
        unchanged = _log("unchanged", data, "s1", first, env)[1]
        figures.append(ratio_figure(f"s1: server ({name}) log new", new, "embedded", embedded, 3.0))
        figures.append(Figure(f"s1: server ({name}) re-log unchanged (process)", unchanged, "s"))
        # The floor right before each, in the same state (no files deleted since)
        outs = [os.path.join(ROOT, f"out-s1-{name}{side}") for side in ("-emb", "")]
        dirs += [*outs, download_env["CAIRN_CACHE_DIR"], env["CAIRN_CACHE_DIR"] + "-dl"]
        for d in dirs[-4:]:
            discard(d)
        floor = _download("s1", outs[0], download_env)["seconds"]
        figures.append(Figure(f"s1: embedded download (floor, {name})", floor, "s"))
        down = _download("s1", outs[1], {**env, "CAIRN_CACHE_DIR": env["CAIRN_CACHE_DIR"] + "-dl"})
        figures += _download_figures(f"s1: server ({name}) download", down, floor)
    dirs += [*emb_env.values(), *(env["CAIRN_CACHE_DIR"] for _, env in last.values())]
    return figures


def _s2(data: str, s3: S3Server, backends: dict[str, CairnServer]) -> list[Figure]:
    """s2's first logs (4 x 256 MiB): the embedded store's, then through each server, in MB/s
    beside moto's own PUTs of the same files."""
    mb = 4 * 256 * 1.048576
    first = os.path.join(data, "d000", sorted(os.listdir(os.path.join(data, "d000")))[0])
    sha256_pass(data)  # every run below reads the files from a warm page cache
    store = os.path.join(ROOT, "store-s2")
    shutil.rmtree(store, ignore_errors=True)
    env = {"CAIRN_DIR": store, "CAIRN_CACHE_DIR": os.path.join(ROOT, "cache-s2")}
    shutil.rmtree(env["CAIRN_CACHE_DIR"], ignore_errors=True)  # "new" means unseen files
    figures = [Figure("s2: embedded log new (floor)", _log("new", data, "s2", first, env)[0], "s")]
    shutil.rmtree(store, ignore_errors=True)
    s3_rate = mb / _moto_put_floor(s3, data)
    figures.append(Figure("s2: moto's own PUT, boto3 (S3 floor)", s3_rate, "MB/s"))
    for name, server in backends.items():
        cache = os.path.join(ROOT, f"cache-s2-{name}")
        shutil.rmtree(cache, ignore_errors=True)
        key = server.create_key("benchs2")
        env = {"CAIRN_BASE_URL": server.url, "CAIRN_API_KEY": key, "CAIRN_CACHE_DIR": cache}
        # Issue 6's 300 MB/s is more than the S3 server itself takes (moto: 70-170 MB/s here):
        # on S3 the target is relative to its own rate, as issue 14's large file; on a local
        # directory it stays 300 MB/s.
        rate, on_s3 = mb / _log("new", data, "s2", first, env)[0], name == "s3"
        figures.append(
            Figure(
                f"s2: server ({name}) log new",
                rate,
                "MB/s",
                "S3 PUT" if on_s3 else "",
                s3_rate if on_s3 else None,
                "target >= 0.8x" if on_s3 else "target >= 300",
                rate >= (0.8 * s3_rate if on_s3 else 300),
            )
        )
    return figures


def run() -> list[Figure]:
    figures: list[Figure] = []
    only = os.environ.get("BENCH_SERVER_ONLY")
    if only in ("transfers", "resolve"):
        pg = Postgres()
        s3 = S3Server() if only == "transfers" else None
        started: list[CairnServer] = []
        try:
            if s3 is not None:
                return _transfers(pg, s3)
            store = os.path.join(ROOT, "server-blobs-resolve")
            shutil.rmtree(store, ignore_errors=True)
            started.append(CairnServer(pg.create_database("bench_resolve"), store))
            return _resolves(started[0], pg, store, started)
        finally:
            for server in started:
                server.stop()
            if s3 is not None:
                s3.stop()
            pg.stop()
    s1 = make_tree(os.path.join(ROOT, "s1"), 100, 200, 4096)
    dirs: list[str] = []  # s1's stores, downloads and caches: discarded last (``_download``)
    s2 = "" if only == "s1" else make_tree(os.path.join(ROOT, "s2"), 1, 4, 256 << 20, seed=2)
    pg = Postgres()
    s3 = S3Server()
    servers: list[CairnServer] = []
    try:
        figures += _s1(s1, pg, s3, servers, dirs)
        if only == "s1":
            return figures
        local_store = os.path.join(ROOT, "server-blobs")
        shutil.rmtree(local_store, ignore_errors=True)
        backends = {
            "local": CairnServer(pg.create_database("bench_local"), local_store),
            "s3": CairnServer(pg.create_database("bench_s3"), s3.url("bench"), s3.env),
        }
        servers.extend(backends.values())
        figures += _s2(s2, s3, backends)
        figures.extend(_resolves(backends["local"], pg, local_store, servers))
        figures.extend(_transfers(pg, s3))
    finally:
        for server in servers:
            server.stop()
        s3.stop()
        pg.stop()
        for d in dict.fromkeys(dirs):
            discard(d)  # deleted after the last suite (the next one's files are created faster)
    return figures
