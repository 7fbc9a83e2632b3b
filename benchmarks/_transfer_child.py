"""Child process: log a directory as an artifact (``up``) or download its latest version into a
new directory (``down``), against whatever store the environment names; prints the seconds, the
CPU seconds and the memory of this process: its RSS once the store is open (``base_mib``) and its
peak (``peak_mib``: ``VmHWM``, this process's own high-water mark; ``ru_maxrss`` would include
the RSS of the bench process that started it, which Linux keeps across ``execve``)."""

from __future__ import annotations

import json
import os
import resource
import sys
import time


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
    start = time.perf_counter()
    with cairn.init(project="bench") as run:
        if step == "up":
            art = cairn.Artifact(name, "dataset")
            art.add_dir(path)
            run.log_artifact(art)
        else:
            run.use_artifact(f"{name}:latest").download(path)
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    peak = _status_mib("VmHWM")
    print(json.dumps({"seconds": seconds, "base_mib": base, "peak_mib": peak, "cpu": cpu}))


if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore")
    os.environ.setdefault("CAIRN_SILENT", "true")
    main()
