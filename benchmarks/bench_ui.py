"""Issue 7: the web UI on a 1,000,000-entry version (HTTP time against a real cairn ui process).

Each page is timed cold, as the first request a freshly started ``cairn ui`` answers (nothing
cached: every manifest page it needs is read and decoded), then warm (the same request again).
"""

from __future__ import annotations

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
