"""Child process: one step of logging a data set (new, unchanged, or with one file changed).

Each step is its own process, as a user runs it: the parent times the whole process (interpreter,
imports, opening the store); the child reports the time of the log itself. With a fourth
argument, the step "changed" changes that file's first byte before the log and puts it back
after (bench_server); without one, the parent has changed a file already (bench_core)."""

from __future__ import annotations

import json
import os
import resource
import sys
import time


def main() -> None:
    step, path, name = sys.argv[1:4]
    changed_file = sys.argv[4] if len(sys.argv) > 4 else ""
    import cairn

    if step == "new":
        # Creating the store (its tables, once per store) is not part of logging an artifact.
        from cairn.sdk import current_service

        current_service()
    first = b""
    changing = step == "changed" and changed_file != ""
    if changing:
        with open(changed_file, "r+b") as f:
            first = f.read(1)
            f.seek(0)
            f.write(bytes([(first[0] + 1) % 256]))
    try:
        start = time.perf_counter()
        cpu_start = time.process_time()
        with cairn.init(project="bench") as run:
            art = cairn.Artifact(name, "dataset")
            art.add_dir(path)
            run.log_artifact(art)
        seconds = time.perf_counter() - start
    finally:
        if changing:
            with open(changed_file, "r+b") as f:
                f.write(first)
    own = resource.getrusage(resource.RUSAGE_SELF)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)  # staging workers, if any ran
    peak = max(own.ru_maxrss, workers.ru_maxrss) / 1024
    cpu = time.process_time() - cpu_start + workers.ru_utime + workers.ru_stime
    print(json.dumps({"seconds": seconds, "version": art.version, "peak_mib": peak, "cpu": cpu}))


if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore")
    os.environ.setdefault("CAIRN_SILENT", "true")
    main()
