"""Child process: one step of the scale bench (issue 18), as a user runs it.

``python -m benchmarks._scale_child STEP TREE NAME DEST`` with STEP one of ``base`` (import and
open the store, nothing else: the memory floor), ``log`` (add_dir + log_artifact), ``draft`` (a
new draft of NAME:latest with one file replaced), ``download`` (into DEST, which must not exist),
``verify`` (DEST against NAME:latest; NAME may name a version, ``big:v0``), ``dist-stage``
(every entry of NAME:latest upserted into the distributed version ``scale`` of NAME-dist, 50,000
per upsert, as workers would) and ``dist-finish`` (a new process finishes it, bringing nothing).
Prints JSON: the seconds of the step and the peak RSS of this process or its children (MiB)."""

from __future__ import annotations

import json
import os
import resource
import sys
import time


def peak_mib() -> float:
    """This process's own peak (VmHWM: ``ru_maxrss`` of a child also counts the RSS of the
    process that started it, up to its exec), or a staging worker's if larger."""
    with open("/proc/self/status") as f:
        own = int(next(line.split()[1] for line in f if line.startswith("VmHWM:")))
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def stage_all(name: str, per_upsert: int = 50_000) -> int:
    """Upsert every entry of NAME:latest into the distributed version ``scale`` of NAME-dist
    (through the Service, a batch per upsert); how many."""
    from cairn.core import Change, PageReader
    from cairn.sdk import current_service
    from cairn.service import StageRequest

    svc = current_service()
    entity = svc.default_entity
    root = svc.resolve(entity, "scale", name, None).digest
    assert root is not None
    batch: list[Change] = []
    count = 0
    for entry in PageReader(svc.read_blob, capacity=8).iter_from(root):
        batch.append((entry.path, entry))
        if len(batch) == per_upsert:
            svc.stage(StageRequest(entity, "scale", f"{name}-dist", "dataset", "scale", batch))
            count += len(batch)
            batch = []
    if batch:
        svc.stage(StageRequest(entity, "scale", f"{name}-dist", "dataset", "scale", batch))
        count += len(batch)
    return count


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
    elif step == "dist-stage":
        version = str(stage_all(name))
    elif step == "dist-finish":
        with cairn.init(project="scale", job_type="bench") as run:
            art = cairn.Artifact(f"{name}-dist", "dataset")
            run.finish_artifact(art, distributed_id="scale")
            version = art.version
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
