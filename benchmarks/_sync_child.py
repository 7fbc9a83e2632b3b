"""Child process: log a tree and a large file as one version (``log``), or sync a store to a
server (``sync SRC URL KEY``); prints the seconds it took as JSON."""

from __future__ import annotations

import json
import os
import sys
import time

import cairn


def log(tree: str, big: str) -> dict[str, float]:
    from cairn.sdk import current_service

    current_service()  # creating the store is not part of logging
    start = time.perf_counter()
    with cairn.init(project="bench-sync") as run:
        art = cairn.Artifact("data", "dataset")
        art.add_dir(tree, name="small")
        art.add_file(big, name="big.bin")
        run.log_artifact(art)
    return {"seconds": time.perf_counter() - start}


def sync(source: str, url: str, key: str) -> dict[str, float]:
    """What ``cairn sync SOURCE URL`` does, both stores opened before the clock starts (as
    ``log`` opens its store before its clock): the figure compares the work, not the start."""
    from cairn.sdk import Settings, SyncOptions, open_store, sync_stores

    settings = Settings.from_env()
    src = open_store(source, None, settings)
    dst = open_store(url, key, settings)
    # The key's user owns its entity at the server: the laptop's versions go there.
    options = SyncOptions(entity=os.environ["CAIRN_ENTITY"])
    try:
        start = time.perf_counter()
        report = sync_stores(src, dst, options)  # its bars read the environment, as sync's
        seconds = time.perf_counter() - start
    finally:
        dst.close()
        src.close()
    return {"seconds": seconds, "copied": report.copied, "bytes_sent": report.bytes_sent}


if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore")
    os.environ.setdefault("CAIRN_SILENT", "true")
    if sys.argv[1] == "log":
        print(json.dumps(log(sys.argv[2], sys.argv[3])))
    else:
        print(json.dumps(sync(sys.argv[2], sys.argv[3], sys.argv[4])))
