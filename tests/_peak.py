"""Peak memory of a fresh process, as the kernel counts it: the memory tests' one way to measure.

A child runs ``MEASURED + code``: at exit it writes its peak RSS as the last line of its stderr,
its own ``VmHWM`` (the high-water mark of this process alone; ``ru_maxrss`` of the process that
started it would carry that one's RSS across ``execve``), or that of a process it started and
waited for (a first log's staging workers) if larger. ``status(field)`` reads any other figure of
``/proc/self/status`` (MiB) while it runs. Memory, unlike time, does not depend on how loaded the
machine is, so bounds on these figures hold on a busy CI runner.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

MEASURED = textwrap.dedent(
    """
    import atexit, resource, sys
    def _kb(field):
        with open("/proc/self/status") as f:
            return int(next(line.split()[1] for line in f if line.startswith(field + ":")))
    def status(field):
        return _kb(field) / 1024
    def _peak():
        kb = max(_kb("VmHWM"), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
        sys.stderr.write(f"\\nVmHWM {kb}\\n")
    atexit.register(_peak)
    """
)


def peak_of(stderr: str) -> float:
    """The peak (MiB) a ``MEASURED`` child wrote at exit."""
    found = re.findall(r"^VmHWM (\d+)$", stderr, re.M)
    assert found, stderr[-3000:]
    return int(found[-1]) / 1024


def run_measured(
    code: str, args: list[str], env: dict[str, str], timeout: float | None = None
) -> tuple[float, str]:
    """Run ``code`` in a fresh process that must succeed; its peak RSS (MiB) and its stdout."""
    proc = subprocess.run(
        [sys.executable, "-c", MEASURED + textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return peak_of(proc.stderr), proc.stdout


def process_peak(pid: int) -> float:
    """The ``VmHWM`` (MiB) so far of a running process (a server)."""
    with open(f"/proc/{pid}/status") as f:
        return int(next(line.split()[1] for line in f if line.startswith("VmHWM:"))) / 1024
