"""Issue 14's transfer figures measured again, independently of ``make bench``'s harness.

``python -m benchmarks.transfer_check [IMAGES] [LARGE_MIB]`` (defaults 2,000 and 512): starts its
own PostgreSQL, moto S3 server and ``cairn server --workers 2`` (the real processes of
``tests/_infra.py``), writes an image-shaped set (IMAGES files of 150-250 KiB, 100 per directory)
and one large file of random bytes, then in the same run, alternating: the SDK in a fresh Python
process (``add_dir`` + ``log_artifact``, then ``use_artifact(...).download()``, timed inside the
process from the first call to the end) and boto3 doing the same with the object store alone (8
PUTs/GETs in parallel for the images, ``upload_file``/``download_file`` for the large file). It
shares no code with ``benchmarks/bench_server.py``: its files, timing and ratios are its own.
Prints each figure, its ratio to boto3 (issue 14's targets: images <= 1.5x boto3's time, the
large file >= 0.8x its rate) and the load average; nothing is written to the repository.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from tests._infra import CairnServer, Postgres, S3Server

SDK = """
import json, sys, time
import cairn
from cairn.sdk import current_service
step, path, name = sys.argv[1:4]
current_service()
start = time.perf_counter()
with cairn.init(project="check") as run:
    if step == "up":
        art = cairn.Artifact(name, "dataset")
        (art.add_dir if name == "images" else art.add_file)(path)
        run.log_artifact(art)
    else:
        run.use_artifact(name + ":latest").download(path)
print(json.dumps(time.perf_counter() - start))
"""


def write_images(root: str, count: int) -> list[str]:
    rng = random.Random(1414)
    paths = []
    for i in range(count):
        d = os.path.join(root, f"d{i // 100:03}")
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, f"img{i:05}.jpg")
        with open(path, "wb") as f:
            f.write(rng.randbytes(rng.randint(150 << 10, 250 << 10)))
        paths.append(path)
    return paths


def write_large(path: str, mib: int) -> None:
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(1 << 20))


def sdk(step: str, path: str, name: str, env: dict[str, str]) -> float:
    out = subprocess.run(
        [sys.executable, "-c", SDK, step, path, name], env=env, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return float(out.stdout.strip().splitlines()[-1])


def boto3_images(s3: S3Server, paths: list[str], down: str) -> tuple[float, float]:
    client = s3.client()
    keys = [f"check-floor/{i}" for i in range(len(paths))]

    def put(i: int) -> None:
        with open(paths[i], "rb") as f:
            client.put_object(Bucket=s3.bucket, Key=keys[i], Body=f)

    def get(i: int) -> None:
        body = client.get_object(Bucket=s3.bucket, Key=keys[i])["Body"].read()
        with open(os.path.join(down, f"{i}.jpg"), "wb") as f:
            f.write(body)

    with ThreadPoolExecutor(8) as pool:
        start = time.perf_counter()
        list(pool.map(put, range(len(paths))))
        up = time.perf_counter() - start
        start = time.perf_counter()
        list(pool.map(get, range(len(paths))))
        return up, time.perf_counter() - start


def boto3_large(s3: S3Server, path: str, down: str) -> tuple[float, float]:
    client = s3.client()
    start = time.perf_counter()
    client.upload_file(path, s3.bucket, "check-floor/large")
    up = time.perf_counter() - start
    start = time.perf_counter()
    client.download_file(s3.bucket, "check-floor/large", down)
    return up, time.perf_counter() - start


def main() -> None:
    images = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    large_mib = int(sys.argv[2]) if len(sys.argv) > 2 else 512
    root = tempfile.mkdtemp(prefix="cairn-transfer-check-")
    pg, s3 = Postgres(), S3Server()
    server = None
    try:
        paths = write_images(os.path.join(root, "images"), images)
        size_mb = sum(os.path.getsize(p) for p in paths) / 1e6
        large = os.path.join(root, "large.bin")
        write_large(large, large_mib)
        server = CairnServer(
            pg.create_database("transfer_check"),
            s3.url("check"),
            {**s3.env, "CAIRN_SERVER_WORKERS": "2"},
        )
        env = {
            **os.environ,
            "CAIRN_BASE_URL": server.url,
            "CAIRN_API_KEY": server.create_key("check"),
            "CAIRN_CACHE_DIR": os.path.join(root, "cache"),
            "CAIRN_SILENT": "true",
        }
        print(
            f"{images} images ({size_mb:.0f} MB), one {large_mib} MiB file; load {os.getloadavg()}"
        )
        rows = []
        floor_up, floor_down = boto3_images(s3, paths, _fresh(root, "floor-images"))
        up = sdk("up", os.path.join(root, "images"), "images", env)
        down = sdk("down", _fresh(root, "down-images"), "images", env)
        rows += [("images up", up, floor_up, 1.5), ("images down", down, floor_down, 1.5)]
        floor_up, floor_down = boto3_large(s3, large, os.path.join(root, "floor-large.bin"))
        up = sdk("up", large, "large", env)
        down = sdk("down", _fresh(root, "down-large"), "large", env)
        rows += [("large up", up, floor_up, 1.25), ("large down", down, floor_down, 1.25)]
        for name, seconds, floor, limit in rows:
            ratio = seconds / floor
            rate = (
                f" ({large_mib * 1.048576 / seconds:.1f} MB/s)" if name.startswith("large") else ""
            )
            verdict = "met" if ratio <= limit else "MISS"
            print(
                f"{name:12} {seconds:7.2f} s{rate}  boto3 {floor:6.2f} s  {ratio:.2f}x  {verdict}"
            )
        print(f"load at the end {os.getloadavg()}")
    finally:
        if server is not None:
            server.stop()
        s3.stop()
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


def _fresh(root: str, name: str) -> str:
    path = os.path.join(root, name)
    os.makedirs(path, exist_ok=True)
    return path


if __name__ == "__main__":
    main()
