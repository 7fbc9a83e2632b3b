"""Issue 7: the web UI on a 1,000,000-entry version (HTTP time against a real cairn ui process).

Each page is timed cold, as the first request a freshly started ``cairn ui`` answers (nothing
cached: every manifest page it needs is read and decoded), then warm (the same request again).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

from benchmarks._common import ROOT, Figure, run_child

ROUNDS = 3
TARGET = 1.0  # seconds, cold


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[float, bytes]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as r:
        body = r.read()
        assert r.status == 200, (url, r.status)
    return time.perf_counter() - start, body


def _serve_and_time(store: str, path: str) -> tuple[float, float, bytes]:
    """Start cairn ui, time ``path`` cold then warm, stop it."""
    port = _free_port()
    cairn = os.path.join(os.path.dirname(sys.executable), "cairn")
    proc = subprocess.Popen(
        [cairn, "ui", "--port", str(port)],
        env={**os.environ, "CAIRN_DIR": store},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _get(base + "/-/static/style.css")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        cold, body = _get(base + path)
        warm, _ = _get(base + path)
        return cold, warm, body
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def run() -> list[Figure]:
    env = {
        "CAIRN_DIR": os.path.join(ROOT, "store-ui"),
        "CAIRN_CACHE_DIR": os.path.join(ROOT, "cache-ui"),
    }
    for path in env.values():
        shutil.rmtree(path, ignore_errors=True)
    start = time.perf_counter()
    run_child("_incr_child", "build", "1000000", "big", env=env)
    built = time.perf_counter() - start
    from cairn.service import local_user  # the entity the build used (the store's default)

    version = f"/{local_user()}/bench/artifacts/dataset/big/v0"
    pages = [
        ("version page (details + root listing)", version),
        ("file tree: root (1,000 directories)", version + "/files"),
        ("file tree: root, second page", None),
        ("file tree: a subdirectory (1,000 files)", version + "/files/d0500/"),
    ]
    figures = [Figure("(building the 1,000,000-entry version, not timed)", built, "s")]
    for name, path in pages:
        if path is None:  # the "next page" link of the root listing
            _, _, body = _serve_and_time(env["CAIRN_DIR"], version + "/files")
            marker = body.split(b'class="next"')[0].rsplit(b'href="', 1)[1].split(b'"')[0]
            path = marker.decode().replace("&amp;", "&")
        colds, warms = [], []
        for _ in range(ROUNDS):
            cold, warm, body = _serve_and_time(env["CAIRN_DIR"], path)
            colds.append(cold)
            warms.append(warm)
        assert b"d0" in body
        cold = statistics.median(colds)
        figures.append(
            Figure(f"{name}, cold", cold, "s", target=f"target <= {TARGET}", ok=cold <= TARGET)
        )
        figures.append(Figure(f"{name}, warm", min(warms), "s"))
    for path in env.values():
        shutil.rmtree(path, ignore_errors=True)
    return figures


# -- issue 16: search and the versions table on a store with 100,000 versions --------------------

SEARCH_VERSIONS = 100_000
SEARCH_TARGET = 0.2  # seconds, one search page over HTTP
SEARCH_QUERIES = [
    ("a word (names, descriptions, aliases, tags, values)", "images-07"),
    ("a tag", "tag:exp-42"),
    ("an alias", "alias:best"),
    ("metadata, numeric", "accuracy>0.999"),
    ("metadata, two conditions", "source:web split.train>=990"),
    ("a type and a word", "type:model nightly"),
    ("nothing matches", "no-such-thing"),
    ("a common word (every description)", "run"),
    ("two common words", "run collection"),
    ("a word and a tag", "run tag:nightly"),
    ("two common metadata conditions", "lr:0.1 source:web"),
]
# The same store seen by a key that may read one project of ten (10,000 versions): what a
# server's web UI asks for such a key.
SEARCH_SCOPED_QUERIES = [
    ("a common word", "run"),
    ("two common words", "run collection"),
    ("a tag", "tag:nightly"),
    ("a word and a tag", "run tag:nightly"),
    ("two common metadata conditions", "lr:0.1 source:web"),
]
SEARCH_RUNS = int(os.environ.get("CAIRN_BENCH_SEARCH_RUNS", "20"))  # each query, after one warm-up


def _timed(name: str, times: list[float]) -> list[Figure]:
    """The median of ``times`` (checked against the target) and their 95th percentile."""
    times = sorted(times)
    median = statistics.median(times)
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return [
        Figure(name, median, "s", target=f"target <= {SEARCH_TARGET}", ok=median <= SEARCH_TARGET),
        Figure(f"{name} (p95)", p95, "s"),
    ]


def _load() -> Figure:
    """The machine's load average over the last minute (other processes share its cores)."""
    return Figure(f"(load average, {os.cpu_count()} cores)", os.getloadavg()[0], "")


def build_search_store(store: str, n: int = SEARCH_VERSIONS, catalog_url: str = "") -> str:
    """``n`` committed versions in 100 collections of 10 projects (and 10,010 more in two
    collections), with metadata, tags and aliases, written straight into the catalog (the
    manifests are not needed to search or to list versions)."""
    import random as _random

    from cairn.catalog import Tx
    from cairn.catalog import _schema as s
    from cairn.core import LATEST
    from cairn.core._search import index_rows, text_words
    from cairn.service import LocalService

    if catalog_url:  # the same store with its catalog on PostgreSQL
        from cairn.catalog import Catalog
        from cairn.storage import LocalBlobStore

        blobs = os.path.join(store, "blobs")
        svc = LocalService(Catalog(catalog_url), LocalBlobStore(blobs), location=blobs)
    else:
        svc = LocalService.open(store)
    rnd = _random.Random(16)
    per = n // 100
    digest = "sha256:" + "0" * 64

    # 100 collections of n/100 versions, and two more in project-0 whose versions tables are
    # timed side by side: one of 10,000 versions and one of 10.
    collections = [(f"project-{c % 10}", f"images-{c:02}", per) for c in range(100)]
    collections += [("project-0", "sweep-10000", 10_000), ("project-0", "sweep-10", 10)]

    def fill(tx: Tx) -> None:
        for c, (project, name, count) in enumerate(collections):
            pid = tx.projects.id_of("bench", project, create=True)
            assert pid is not None
            kind = "model" if c % 4 == 0 else "dataset"
            cid, _ = tx.collections.lock(pid, name, kind, f"collection {c}")
            versions, meta, words, tags, aliases = [], [], [], [], []
            for i in range(count):
                vid = f"{c:04x}{i:028x}"
                metadata = {
                    "accuracy": rnd.random(),
                    "lr": rnd.choice([0.1, 0.01, 0.001]),
                    "source": rnd.choice(["web", "camera", "synthetic"]),
                    "split": {"train": rnd.randrange(1000), "test": rnd.randrange(100)},
                }
                versions.append(
                    {
                        "id": vid,
                        "collection_id": cid,
                        "idx": i,
                        "state": "COMMITTED",
                        "digest": digest,
                        "size": rnd.randrange(1 << 30),
                        "file_count": rnd.randrange(100_000),
                        "metadata": json.dumps(metadata),
                        "description": f"run {i} of collection {c}",
                        "created_at": 1.7e9 + c * per + i,
                        "updated_at": 1.7e9 + c * per + i,
                        "committed_at": 1.7e9 + c * per + i,
                    }
                )
                meta += [
                    {"version_id": vid, "key": k, "text_value": t, "num_value": v}
                    for k, t, v in index_rows(metadata)
                ]
                words += [
                    {"word": w, "version_id": vid} for w in text_words(versions[-1]["description"])
                ]
                tags.append({"version_id": vid, "tag": f"exp-{i % 100}"})
                if i % 10 == 0:
                    tags.append({"version_id": vid, "tag": "nightly"})
            aliases.append(
                {"collection_id": cid, "alias": LATEST, "version_id": versions[-1]["id"]}
            )
            aliases.append(
                {
                    "collection_id": cid,
                    "alias": "best",
                    "version_id": versions[min(7, count - 1)]["id"],
                }
            )
            for table, rows in (
                (s.versions, versions),
                (s.version_metadata, meta),
                (s.version_words, words),
                (s.tags, tags),
                (s.aliases, aliases),
            ):
                tx.conn.execute(table.insert(), rows)
            tx.versions.bump_index(cid, count - 1)

    svc.catalog.write(fill)
    svc.close()
    return store


def run_search() -> list[Figure]:
    from urllib.parse import quote

    store = os.path.join(ROOT, "store-search")
    shutil.rmtree(store, ignore_errors=True)
    start = time.perf_counter()
    build_search_store(store)
    figures = [Figure("(building 110,010 versions, not timed)", time.perf_counter() - start, "s")]
    collection = "/bench/project-3/artifacts/dataset/images-03"
    pages = [
        (f"SQLite, HTTP search page: {name}", f"/-/search?q={quote(q)}")
        for name, q in SEARCH_QUERIES
    ]
    big = "/bench/project-0/artifacts/model/sweep-10000"
    small = "/bench/project-0/artifacts/dataset/sweep-10"
    pages += [
        ("versions table (1,000 versions), first page", collection),
        ("versions table, sorted by size", collection + "?sort=size"),
        ("versions table, filtered by tag, page 2", collection + "?q=tag:nightly&page=2"),
        ("versions table of 10 versions", small),
        ("versions table of 10,000 versions", big),
        (
            "... of 10,000, page 150 by size, 2 columns",
            big + "?sort=size&page=150&col=lr&col=split.train",
        ),
    ]
    from cairn.service import LocalService

    svc = LocalService.open(store)
    figures += time_search_service("SQLite, Service.search", svc)
    svc.close()
    port = _free_port()
    cairn = os.path.join(os.path.dirname(sys.executable), "cairn")
    proc = subprocess.Popen(
        [cairn, "ui", "--port", str(port)],
        env={**os.environ, "CAIRN_DIR": store},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _get(base + "/-/static/style.css")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        figures.append(_load())
        for name, path in pages:
            _get(base + path)  # the first request of a query warms SQLite's page cache
            figures += _timed(name, [_get(base + path)[0] for _ in range(SEARCH_RUNS)])
        figures.append(_load())
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    shutil.rmtree(store, ignore_errors=True)
    return figures


def time_search_service(name: str, svc: object) -> list[Figure]:
    """Each search of ``SEARCH_QUERIES`` timed as ``Service.search`` (the catalog's answer, in
    process: what the search page asks), median and p95 of ``SEARCH_RUNS`` after one to warm
    the caches."""
    from cairn.service import LocalService, SearchRequest

    assert isinstance(svc, LocalService)
    figures = [_load()]
    for label, query in SEARCH_QUERIES:
        svc.search(SearchRequest(query=query))
        times = []
        for _ in range(SEARCH_RUNS):
            start = time.perf_counter()
            svc.search(SearchRequest(query=query))
            times.append(time.perf_counter() - start)
        figures += _timed(f"{name}: {label}", times)
    for label, query in SEARCH_SCOPED_QUERIES:
        request = SearchRequest(query=query, projects=(("bench", "project-3"),))
        svc.search(request)
        times = []
        for _ in range(SEARCH_RUNS):
            start = time.perf_counter()
            svc.search(request)
            times.append(time.perf_counter() - start)
        figures += _timed(f"{name}, one project of ten: {label}", times)
    return [*figures, _load()]


def run_search_postgres() -> list[Figure]:
    """The same 110,010 versions with the catalog on PostgreSQL (a throwaway cluster, as the
    tests start one), each search timed as ``Service.search``."""
    sys.path.insert(0, os.path.dirname(ROOT))
    from tests._infra import Postgres  # the tests' helper: initdb + pg_ctl on loopback

    from cairn.catalog import Catalog
    from cairn.service import LocalService
    from cairn.storage import LocalBlobStore

    store = os.path.join(ROOT, "store-search-pg")
    shutil.rmtree(store, ignore_errors=True)
    pg = Postgres()
    try:
        url = pg.create_database("bench_search").replace("postgresql://", "postgresql+psycopg://")
        start = time.perf_counter()
        build_search_store(store, catalog_url=url)
        figures = [
            Figure(
                "(PostgreSQL: building 110,010 versions, not timed)",
                time.perf_counter() - start,
                "s",
            )
        ]
        catalog = Catalog(url)
        # What autovacuum does after a bulk load (PostgreSQL 13+ vacuums tables after inserts):
        # fresh planner statistics, and a visibility map, without which an index-only scan
        # reads each row's table page too.
        with catalog.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
        blobs = os.path.join(store, "blobs")
        svc = LocalService(catalog, LocalBlobStore(blobs), location=blobs)
        figures += time_search_service("PostgreSQL", svc)
        svc.close()
    finally:
        pg.stop()
        shutil.rmtree(store, ignore_errors=True)
    return figures
