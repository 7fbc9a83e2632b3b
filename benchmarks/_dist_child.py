"""Child process for the distributed benchmark: one worker's upsert, the finisher, or one process
logging everything. Times are taken inside the process, after imports and after opening the store
(interpreter start and imports cost the same whatever cairn does; the bench reports them
separately), so the baseline and the workers both exclude creating the store."""

from __future__ import annotations

import json
import os
import sys
import time
import warnings


def main() -> None:
    role, root = sys.argv[1], sys.argv[2]
    t_import = time.perf_counter()
    import cairn
    from cairn.sdk import current_service

    # Every role opens the store (creating it if needed) before the clock starts, so the baseline
    # and the workers both exclude creating it.
    current_service()
    imported = time.perf_counter() - t_import
    if role == "upsert":
        go, dirs = sys.argv[3], sys.argv[4:]
        with cairn.init(project="bench", group="dist") as run:
            print("ready", flush=True)
            while not os.path.exists(go):
                time.sleep(0.001)
            start = time.time()
            art = cairn.Artifact("s1-dist", "dataset")
            for d in dirs:
                art.add_dir(os.path.join(root, d), name=d)
            run.upsert_artifact(art)
            end = time.time()
        print(json.dumps({"start": start, "end": end, "import": imported}))
        return
    start = time.perf_counter()
    if role == "finish":
        with cairn.init(project="bench", group="dist") as run:
            art = run.finish_artifact(cairn.Artifact("s1-dist", "dataset"))
    else:  # single: one process logs everything
        with cairn.init(project="bench") as run:
            art = cairn.Artifact("s1-single", "dataset")
            art.add_dir(root)
            run.log_artifact(art)
    print(
        json.dumps(
            {"seconds": time.perf_counter() - start, "files": art.file_count, "import": imported}
        )
    )


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    main()
