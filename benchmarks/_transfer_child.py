"""Child process: log a directory as an artifact (``up``) or download its latest version into a
new directory (``down``), against whatever store the environment names; prints the seconds, the
CPU seconds and the memory of this process: its RSS once the store is open (``base_mib``) and its
peak (``peak_mib``: ``VmHWM``, this process's own high-water mark; ``ru_maxrss`` would include
the RSS of the bench process that started it, which Linux keeps across ``execve``), and what it
(and its staging workers, once ended) read from the disk while timed (``disk_mib``: 0 when the
data set was in the page cache, as every run of a suite should find it)."""

from __future__ import annotations

import json
import os
import resource
import sys
import time

from benchmarks._common import disk_read_bytes


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    step, path, name = sys.argv[1:4]
    import cairn
    from cairn.sdk import current_service

    current_service()  # opening the store (or the first request) is not part of the transfer
    base = _status_mib("VmRSS")
    read = disk_read_bytes()
    start = time.perf_counter()
    with cairn.init(project="bench") as run:
        if step == "up":
            art = cairn.Artifact(name, "dataset")
            art.add_dir(path)
            run.log_artifact(art)
        else:
            run.use_artifact(f"{name}:latest").download(path)
    seconds = time.perf_counter() - start
    disk_mib = (disk_read_bytes() - read) / (1 << 20)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    peak = _status_mib("VmHWM")
    out = {"seconds": seconds, "base_mib": base, "peak_mib": peak, "cpu": cpu, "disk_mib": disk_mib}
    print(json.dumps(out))


if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore")
    os.environ.setdefault("CAIRN_SILENT", "true")
    main()
