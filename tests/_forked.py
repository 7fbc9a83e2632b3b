"""Many Python worker processes at once, without paying for Python's start each time.

A worker started as ``python -c SCRIPT`` spends ~0.7 s of CPU importing cairn's store code
(SQLAlchemy, Alembic, httpx) before its first line of work: sixteen of them are 11 s of CPU on a
2-core machine, most of such a test. Here one launcher process imports that code once, then
forks a child per worker. Each child is a real process (its own PID, store connections, run and
exit status) that runs the script as ``python -c SCRIPT ARGS...`` would, from the same moment:
``sys.argv``, ``__main__``, its own environment, a traceback and exit status 1 on an exception,
threads joined and ``atexit`` handlers run at the end.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# What a worker of the SDK imports, on the embedded store and through a server.
PRELOAD = (
    "cairn.sdk._init",
    "cairn.sdk._run",
    "cairn.sdk._artifact",
    "cairn.sdk._run_artifacts",
    "cairn.service._local",
    "cairn.service._http",
    "cairn.catalog._catalog",
    "cairn.catalog._migrate",
    "cairn.catalog._embedded",
    "cairn.catalog._quick_tx",
    "cairn.sdk._login",
    "sqlalchemy.dialects.sqlite",
    "alembic.command",
    "alembic.config",
)

_LAUNCHER = textwrap.dedent(
    """
    import gc, json, os, sys
    spec = json.loads(sys.stdin.read())
    for name in spec["preload"]:
        __import__(name)
    # The imported objects out of the collector's sight: its first pass in a child would touch
    # (and so copy) every page of them, ~0.2 s of CPU a child.
    gc.freeze()
    children = {}
    for i, worker in enumerate(spec["workers"]):
        pid = os.fork()
        if pid == 0:
            break
        children[pid] = i
    else:
        status = [None] * len(children)
        while children:
            pid, raw = os.wait()
            status[children.pop(pid)] = os.waitstatus_to_exitcode(raw)
        print(json.dumps(status))
        sys.exit(0)
    # A child: the worker's own output files, environment and arguments, then its script.
    for fd, path in ((1, worker["stdout"]), (2, worker["stderr"])):
        out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(out, fd)
        os.close(out)
    os.environ.clear()
    os.environ.update(worker["env"])
    sys.argv = ["-c", *worker["args"]]
    _code = compile(spec["script"], "<string>", "exec")
    del gc, json, os, spec, children, i, worker, pid, fd, path, out
    exec(_code)
    """
)


@dataclass(frozen=True)
class Finished:
    """A worker's exit status (negative: killed by that signal) and output."""

    returncode: int
    stdout: bytes
    stderr: bytes


def run_workers(
    script: str,
    args: Sequence[Sequence[str]],
    envs: Sequence[Mapping[str, str]] | None = None,
    *,
    timeout: float = 300,
    preload: Sequence[str] = PRELOAD,
) -> list[Finished]:
    """Run ``script`` in ``len(args)`` processes at once, worker ``i`` as ``python -c script
    *args[i]`` with the environment ``envs[i]`` (default: this process's); wait for all."""
    envs = envs if envs is not None else [dict(os.environ)] * len(args)
    assert len(envs) == len(args)
    with tempfile.TemporaryDirectory(prefix="cairn-workers-") as tmp:
        out = pathlib.Path(tmp)
        workers = [
            {
                "args": list(a),
                "env": dict(env),
                "stdout": str(out / f"{i}.out"),
                "stderr": str(out / f"{i}.err"),
            }
            for i, (a, env) in enumerate(zip(args, envs, strict=True))
        ]
        spec = json.dumps({"preload": list(preload), "script": script, "workers": workers})
        done = subprocess.run(
            [sys.executable, "-c", _LAUNCHER],
            input=spec.encode(),
            capture_output=True,
            timeout=timeout,
        )
        assert done.returncode == 0, done.stderr.decode()[-3000:]
        status = json.loads(done.stdout)
        return [
            Finished(code, (out / f"{i}.out").read_bytes(), (out / f"{i}.err").read_bytes())
            for i, code in enumerate(status)
        ]
