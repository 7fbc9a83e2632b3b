"""A real ``cairn ui`` process on a free port, and headless Chromium to look at it."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

CHROMIUM = os.environ.get("CAIRN_TEST_CHROMIUM", "/usr/bin/chromium")
# The machine has no network: without these, Chromium keeps trying to reach Google's services.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cairn_command() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), "cairn")
    if os.path.exists(script):
        return [script]
    return [sys.executable, "-c", "from cairn.cli import main; main()"]


@contextlib.contextmanager
def ui_server(store_dir: str, log_path: str) -> Iterator[str]:
    """Run ``cairn ui`` over ``store_dir``; yields its base URL; stops it afterwards."""
    port = free_port()
    env = {**os.environ, "CAIRN_DIR": store_dir}
    env.pop("CAIRN_BASE_URL", None)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*cairn_command(), "ui", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                with open(log_path) as f:
                    raise RuntimeError(f"cairn ui exited with {proc.returncode}:\n{f.read()}")
            try:
                with urllib.request.urlopen(base + "/-/static/style.css", timeout=5):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise RuntimeError("cairn ui did not start within 60 s") from None
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def in_ci() -> bool:
    """Whether this runs in CI (``CI=true``, as CI services and ``.ci/run`` set it)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def chromium_available() -> bool:
    return os.path.exists(CHROMIUM) or shutil.which(CHROMIUM) is not None


def launch_chromium(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
