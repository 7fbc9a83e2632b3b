"""Issue 15: the first row group of a 1 GiB Parquet file through cairn:// vs a full download().

The file has 4 int64 columns of random values, stored uncompressed, in row groups of pyarrow's
default 1 Mi rows (32 MiB each, so the first row group is 1/32 of the file). Each mode logs it,
then reads the first row group (all columns) with pyarrow through ``cairn://`` and, against that,
downloads the version with ``Artifact.download()`` (verified, every byte). Bytes are counted at
the Service. Modes: the embedded store, and `cairn server` processes on PostgreSQL with a local
blob directory and with S3 (moto), all on loopback. ``CAIRN_BENCH_FS_MB`` sets another size.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Any

from tests._infra import CairnServer, Postgres, S3Server

from benchmarks._common import ROOT, Figure

SIZE_MB = int(os.environ.get("CAIRN_BENCH_FS_MB", "1024"))
ROWS_PER_GROUP = 1 << 20


def _parquet(path: str) -> str:
    """The data file, made once and kept under .bench/."""
    marker = path + ".complete"
    if os.path.exists(marker):
        return path
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = SIZE_MB * (1 << 20) // 32
    rng = np.random.default_rng(15)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with pq.ParquetWriter(
        path, pa.schema([(c, pa.int64()) for c in "abcd"]), compression="none"
    ) as w:
        for start in range(0, rows, ROWS_PER_GROUP):
            n = min(ROWS_PER_GROUP, rows - start)
            w.write_table(pa.table({c: rng.integers(0, 2**40, n) for c in "abcd"}))
    with open(marker, "w") as f:
        f.write("ok")
    return path


def _moto_range_floor(s3: S3Server, digest: str) -> float:
    """What one ranged GET of 1 MiB of the file costs moto itself (boto3, no cairn)."""
    hexd = digest.partition(":")[2]
    client = s3.client()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        client.get_object(
            Bucket=s3.bucket, Key=f"fs/sha256/{hexd[:2]}/{hexd[2:]}", Range="bytes=0-1048575"
        )["Body"].read()
        times.append(time.perf_counter() - start)
    client.close()
    return min(times)


def _mode(label: str, env: dict[str, str], data: str) -> list[Figure]:
    import pyarrow.parquet as pq

    import cairn
    from cairn.fs import CairnFileSystem
    from cairn.sdk import current_service, reset_services
    from cairn.testing import CountingService

    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        reset_services()
        art = cairn.Artifact("big", "dataset")
        art.add_file(data, name="big.parquet")
        with cairn.init(project="bench", job_type="bench-fs") as run:
            run.log_artifact(art)
        size = os.path.getsize(data)
        counter = CountingService(current_service())
        fs: Any = CairnFileSystem(service=counter, skip_instance_cache=True)  # type: ignore[arg-type]
        start = time.perf_counter()
        with fs.open("bench/big:latest/big.parquet") as f:
            table = pq.ParquetFile(f).read_row_group(0)
        ranged = time.perf_counter() - start
        assert table.num_rows == ROWS_PER_GROUP
        ranged_bytes = counter.bytes_read
        out = os.path.join(ROOT, f"fs-download-{label}")
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(env["CAIRN_CACHE_DIR"], ignore_errors=True)
        reset_services()  # a fresh client: nothing of the file cached
        start = time.perf_counter()
        cairn.Api().artifact("bench/big:latest").download(root=out)
        full = time.perf_counter() - start
        shutil.rmtree(out, ignore_errors=True)
        mb = 1e6
        return [
            Figure(f"{label}: first row group via cairn://", ranged, "s", "download()", full),
            Figure(f"{label}: bytes fetched via cairn://", ranged_bytes / mb, "MB"),
            Figure(f"{label}: full download() (floor)", full, "s"),
            Figure(f"{label}: bytes of the file", size / mb, "MB"),
        ]
    finally:
        reset_services()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run() -> list[Figure]:
    data = _parquet(os.path.join(ROOT, "fs", f"big-{SIZE_MB}mb.parquet"))
    figures: list[Figure] = []
    base = os.path.join(ROOT, "fs-run")
    shutil.rmtree(base, ignore_errors=True)
    env = {
        "CAIRN_DIR": os.path.join(base, "store"),
        "CAIRN_CACHE_DIR": os.path.join(base, "cache"),
        "CAIRN_SILENT": "true",
    }
    figures += _mode("embedded", env, data)
    pg = Postgres()
    s3 = S3Server()
    servers: list[CairnServer] = []
    try:
        local_store = os.path.join(base, "server-blobs")
        backends = {
            "server (local)": CairnServer(pg.create_database("bench_fs_local"), local_store),
            "server (S3)": CairnServer(pg.create_database("bench_fs_s3"), s3.url("fs"), s3.env),
        }
        servers.extend(backends.values())
        for label, server in backends.items():
            env = {
                "CAIRN_BASE_URL": server.url,
                "CAIRN_API_KEY": server.create_key("benchfs"),
                "CAIRN_CACHE_DIR": os.path.join(base, f"cache-{len(figures)}"),
                "CAIRN_SILENT": "true",
            }
            figures += _mode(label, env, data)
        from cairn.storage import hash_file

        floor = _moto_range_floor(s3, hash_file(data)[0])
        figures.append(Figure("server (S3): moto's own 1 MiB ranged GET (floor)", floor, "s"))
    finally:
        for server in servers:
            server.stop()
        s3.stop()
        pg.stop()
    shutil.rmtree(base, ignore_errors=True)
    return figures
