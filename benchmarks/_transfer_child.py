"""Child process: log a directory as an artifact (``up``) or download its latest version into a
new directory (``down``), against whatever store the environment names; prints the seconds."""

from __future__ import annotations

import json
import os
import resource
import sys
import time


def main() -> None:
    step, path, name = sys.argv[1:4]
    import cairn
    from cairn.sdk import current_service

    current_service()  # opening the store (or the first request) is not part of the transfer
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
    print(json.dumps({"seconds": seconds, "peak_mib": usage.ru_maxrss / 1024, "cpu": cpu}))


if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore")
    os.environ.setdefault("CAIRN_SILENT", "true")
    main()
