"""Issue 14's large file up and down through a server beside boto3's managed multipart transfer
of the same file: runs of each alternated on one S3 server (moto), each figure their median.

Why alternated: on a long-running moto the first large ``CompleteMultipartUpload`` calls are slow
whoever sends them (moto builds the object in memory it takes fresh from the kernel: 4.10 s of
system time for the first, 1.77 s for the same complete 20 s later, fourteenth session), and
the bench used to time ours first, the floor after: it compared moto's states, not uploads.
"""

from __future__ import annotations

import os
import shutil
import time

from tests._infra import S3Server

from benchmarks._common import ROOT, alternated, disk_read_bytes, list_files, run_child, settle


def boto_multipart_up(s3: S3Server, path: str, key: str) -> float:
    """boto3's managed multipart upload of one large file, its defaults (8 MiB parts, 10 at a
    time, a CRC32 of each part as ours): the seconds, its client made before the clock."""
    from botocore.config import Config

    client = s3.client(Config(max_pool_connections=16))
    start = time.perf_counter()
    client.upload_file(path, s3.bucket, key)
    up = time.perf_counter() - start
    client.close()
    return up


def boto_multipart_down(s3: S3Server, key: str) -> float:
    """boto3's managed multipart download of ``key`` into a file, its defaults: the seconds."""
    from botocore.config import Config

    client = s3.client(Config(max_pool_connections=16))
    dest = os.path.join(ROOT, "floor-large.tmp")
    start = time.perf_counter()
    client.download_file(s3.bucket, key, dest)
    down = time.perf_counter() - start
    os.unlink(dest)
    client.close()
    return down


def stored_bytes(s3: S3Server, prefix: str) -> int:
    """The bytes of every object under ``prefix`` in the S3 server's bucket."""
    client = s3.client()
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket, Prefix=prefix)
    total = sum(o["Size"] for page in pages for o in page.get("Contents", []))
    client.close()
    return int(total)


def large_rounds(
    s3: S3Server, prefix: str, dirs: list[str], env: dict[str, str], out: str
) -> dict[str, list[float]]:
    """The large file up through the server (ours: each run a new client process, imports,
    hash, parts, complete and commit all timed) and by boto3's managed multipart (the floor,
    its defaults), ``len(dirs)`` runs each in ``alternated`` order; then down once each, ours
    first (as before: moto reads the whole object for each ranged GET, so a download of 512 MiB
    takes 13-25 s either way, and the down figure is not the one that swings). Returns the
    seconds of every run by side and way ("ours up", "floor down", ...; and ours' peak RSS and
    disk reads), printed in order too. Run ``k`` of either side uploads ``dirs[k]``'s one file,
    each of its own content, and the server's objects (under ``prefix``) must hold that many
    more bytes after each of ours: the same content again would be found on the server, not
    sent. Down, both take the last file up (ours: into the new directory ``out``, its cache
    empty)."""
    size = os.path.getsize(list_files(dirs[0])[0])
    runs: dict[str, list[float]] = {}
    steps: dict[str, list[str]] = {"up": [], "down": []}

    def note(side: str, way: str, seconds: float, res: dict[str, float] | None = None) -> None:
        runs.setdefault(f"{side} {way}", []).append(seconds)
        steps[way].append(f"{side} {seconds:.2f}")
        for what, value in (res or {}).items():
            runs.setdefault(f"{side} {way} {what}", []).append(value)

    stored = stored_bytes(s3, prefix)  # the floor's objects are not under ``prefix``
    done = {"ours": 0, "floor": 0}
    for side in alternated(len(dirs)):
        k = done[side]
        done[side] += 1
        settle()
        if side == "floor":
            read = disk_read_bytes()
            seconds = boto_multipart_up(s3, list_files(dirs[k])[0], f"floor/large-{k}")
            note(side, "up", seconds, {"disk_mib": (disk_read_bytes() - read) / (1 << 20)})
            continue
        res = run_child("_transfer_child", "up", dirs[k], "large", env=env)
        before, stored = stored, stored_bytes(s3, prefix)
        if stored - before < size:
            raise RuntimeError(f"run {k + 1} of ours up stored {stored - before} bytes, not {size}")
        note(side, "up", res.pop("seconds"), res)
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(env["CAIRN_CACHE_DIR"], ignore_errors=True)  # none cached
    settle()
    res = run_child("_transfer_child", "down", out, "large", env=env)
    note("ours", "down", res.pop("seconds"), res)
    settle()
    note("floor", "down", boto_multipart_down(s3, f"floor/large-{len(dirs) - 1}"))
    disk = max(runs["ours up disk_mib"]), max(runs["floor up disk_mib"])
    print(
        f"   (large file up, every run in order, s: {', '.join(steps['up'])}; read from the"
        f" disk at most: ours {disk[0]:.0f} MiB, the floor {disk[1]:.0f} MiB)"
    )
    print(f"   (large file down, s: {', '.join(steps['down'])})")
    return runs
