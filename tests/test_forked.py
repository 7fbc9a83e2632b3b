"""tests/_forked.py: each forked worker behaves as ``python -c SCRIPT ARGS...`` would."""

from __future__ import annotations

import os

from tests._forked import run_workers

SCRIPT = """
import atexit, os, sys, threading
atexit.register(lambda: print("atexit", flush=True))
print(__name__, os.getpid(), os.environ["WHO"], *sys.argv, flush=True)  # before the thread's line
threading.Thread(target=lambda: print("thread", flush=True)).start()
if sys.argv[1] == "fail":
    raise ValueError("worker failed")
if sys.argv[1] == "exit":
    sys.exit(3)
"""


def test_workers_are_processes_with_their_own_arguments_environment_and_status() -> None:
    envs = [{**os.environ, "WHO": who} for who in ("a", "b", "c")]
    ok, failed, exited = run_workers(SCRIPT, [["ok", "x"], ["fail"], ["exit"]], envs, preload=())
    lines = ok.stdout.decode().splitlines()
    assert sorted(lines[:2])[1] == "thread" and lines[2] == "atexit"  # threads joined, then atexit
    name, _, who, *argv = sorted(lines[:2])[0].split()
    assert (name, who, argv) == ("__main__", "a", ["-c", "ok", "x"])
    assert ok.returncode == 0 and ok.stderr == b""
    assert failed.returncode == 1 and b"ValueError: worker failed" in failed.stderr
    assert exited.returncode == 3
    pids = {
        int(next(x for x in w.stdout.split(b"\n") if x.startswith(b"__main__")).split()[1])
        for w in (ok, failed, exited)
    }
    assert len(pids) == 3 and os.getpid() not in pids
