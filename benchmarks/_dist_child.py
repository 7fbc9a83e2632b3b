"""Child process for the distributed benchmark: one worker's upsert, the finisher, or one process
logging everything, or (``create``) the process that makes the store before either side runs.
Times are taken inside the process, after imports and after opening the store (interpreter start
and imports cost the same whatever cairn does; the bench reports them separately), each with
its run's start and finish (``cairn.init`` and leaving it) on both sides; the store
exists before any of them starts (as it does for a job's processes), so the baseline and the
workers both exclude creating it. Each reports its CPU time (user + system) over the same span."""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import warnings


def _children_cpu() -> float:
    """CPU seconds of the staging worker processes this one started, if any."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def main() -> None:
    role, root = sys.argv[1], sys.argv[2]
    t_import = time.perf_counter()
    import cairn
    from cairn.sdk import current_service

    # Every role opens the store before the clock starts (``create`` made it).
    current_service()
    imported = time.perf_counter() - t_import
    if role == "create":
        return
    if role == "upsert":
        go, dirs = sys.argv[3], sys.argv[4:]
        print("ready", flush=True)
        while not os.path.exists(go):
            time.sleep(0.001)
        # The run's start and finish are timed, as the one process's are.
        start, cpu = time.time(), time.process_time()
        with cairn.init(project="bench", group="dist") as run:
            art = cairn.Artifact("s1-dist", "dataset")
            for d in dirs:
                art.add_dir(os.path.join(root, d), name=d)
            run.upsert_artifact(art)
        end, cpu = time.time(), time.process_time() - cpu + _children_cpu()
        out = {"start": start, "end": end, "import": imported, "cpu": cpu}
        print(json.dumps({**out, "sqlalchemy": "sqlalchemy" in sys.modules}))
        return
    start, cpu = time.perf_counter(), time.process_time()
    if role == "finish":
        with cairn.init(project="bench", group="dist") as run:
            art = run.finish_artifact(cairn.Artifact("s1-dist", "dataset"))
    else:  # single: one process logs everything
        with cairn.init(project="bench") as run:
            art = cairn.Artifact("s1-single", "dataset")
            art.add_dir(root)
            run.log_artifact(art)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu + _children_cpu()
    out = {"seconds": seconds, "files": art.file_count, "import": imported, "cpu": cpu}
    print(json.dumps({**out, "sqlalchemy": "sqlalchemy" in sys.modules}))


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    main()
