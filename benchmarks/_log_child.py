"""Child process: time logging a data set new, unchanged, and with one file changed."""

from __future__ import annotations

import json
import os
import resource
import sys
import time

import cairn


def log(path: str, name: str) -> tuple[float, cairn.Artifact]:
    start = time.perf_counter()
    with cairn.init(project="bench") as run:
        art = cairn.Artifact(name, "dataset")
        art.add_dir(path)
        run.log_artifact(art)
    return time.perf_counter() - start, art


def main() -> None:
    path, name, changed_file = sys.argv[1], sys.argv[2], sys.argv[3]
    # Creating the store (its tables, once per store) is not part of logging an artifact.
    from cairn.sdk import current_service

    current_service()
    new, a0 = log(path, name)
    unchanged, a1 = log(path, name)
    assert a1.version == a0.version, "re-log made a new version"
    with open(changed_file, "r+b") as f:
        first = f.read(1)
        f.seek(0)
        f.write(bytes([(first[0] + 1) % 256]))
    try:
        changed, a2 = log(path, name)
        assert a2.version != a0.version
    finally:
        with open(changed_file, "r+b") as f:
            f.write(first)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"new": new, "unchanged": unchanged, "changed": changed, "peak_mib": peak}))


if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore")
    os.environ.setdefault("CAIRN_SILENT", "true")
    main()
