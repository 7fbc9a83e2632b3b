"""Child process: one step of the scale bench (issue 18), as a user runs it.

``python -m benchmarks._scale_child STEP TREE NAME DEST`` with STEP one of ``base`` (import and
open the store, nothing else: the memory floor), ``log`` (add_dir + log_artifact), ``draft`` (a
new draft of NAME:latest with one file replaced), ``download`` (into DEST, which must not exist),
``verify`` (DEST against NAME:latest; NAME may name a version, ``big:v0``). Prints JSON: the seconds of the step and the peak RSS of
this process and its children (MiB)."""

from __future__ import annotations

import json
import os
import resource
import sys
import time


def peak_mib() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def main() -> None:
    step, tree, name, dest = sys.argv[1:5]
    import cairn

    start = time.perf_counter()
    version = ""
    if step == "base":
        from cairn.sdk import current_service

        current_service().resolve  # noqa: B018 (opening the store is the floor)
    elif step == "log":
        with cairn.init(project="scale", job_type="bench") as run:
            art = cairn.Artifact(name, "dataset")
            art.add_dir(tree)
            run.log_artifact(art)
            version = art.version
    elif step == "draft":
        one = os.path.join(dest, "one.txt")
        os.makedirs(dest, exist_ok=True)
        with open(one, "w") as f:
            f.write(f"changed {time.time_ns()}\n")
        with cairn.init(project="scale", job_type="bench") as run:
            draft = run.use_artifact(f"{name}:latest").new_draft()
            first = next(iter(draft.manifest.entries))
            draft.add_file(one, name=first, overwrite=True)
            run.log_artifact(draft)
            version = draft.version
    else:
        ref = name if ":" in name else f"{name}:latest"
        art = cairn.Api(overrides={"project": "scale"}).artifact(ref)
        if step == "download":
            art.download(dest)
        else:
            art.verify(dest)
        version = art.version
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_mib": peak_mib(), "version": version}))


if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore")
    os.environ.setdefault("CAIRN_SILENT", "true")
    main()
