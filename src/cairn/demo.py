"""The seed's scenarios, end to end, written exactly as a W&B user would (``cairn demo``).

1. a single run logs an artifact (v0), then logs it again unchanged (no new version);
2. ``artifact.save()`` outside a run;
3. distributed runs: runs 1 and 2 upsert in parallel processes, run 3 finishes the version;
4. an incremental version: a draft adds a file and removes a directory, then the diff.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from collections.abc import Callable

import cairn as wandb
from cairn.core import short_digest


def _write(path: str, text: str) -> str:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


def _show(artifact: wandb.Artifact, out: Callable[[str], None]) -> None:
    aliases = ", ".join(artifact.aliases)  # `latest` is one of them while it points here
    out(
        f"  {artifact.qualified_name:<44} aliases [{aliases}]  files {artifact.file_count:>3}"
        f"  size {artifact.size:>6} B  digest {short_digest(artifact.digest, algorithm=True)}…"
    )


def upsert_worker(image: str, project: str) -> None:
    """One distributed worker (runs 1 and 2 of the seed), in its own process."""
    with wandb.init(project=project, job_type="worker") as run:
        artifact = wandb.Artifact("artifact_name", "artifact_type")
        artifact.add_file(image)
        run.upsert_artifact(artifact, distributed_id="my_dist_artifact")


def main(workdir: str, out: Callable[[str], None] = print) -> None:
    os.makedirs(workdir, exist_ok=True)
    os.chdir(workdir)
    for i in (1, 2, 3):
        _write(f"image{i}.png", f"pretend this is image {i}\n" * (i * 10))
    _write("file_to_add.txt", "a new batch of data\n")
    _write("dataset/labels.csv", "id,label\n1,cat\n2,dog\n")
    _write("dataset/dir_to_remove/dup1.txt", "duplicate\n")
    _write("dataset/dir_to_remove/dup2.txt", "duplicate too\n")

    out("1. Single run: log an artifact, then log the same content again")
    with wandb.init(project="seed-single") as run:
        artifact = wandb.Artifact("artifact_name", "artifact_type")
        artifact.add_file("image1.png")
        run.log_artifact(artifact)
    _show(artifact, out)
    with wandb.init(project="seed-single") as run:
        again = wandb.Artifact("artifact_name", "artifact_type")
        again.add_file("image1.png")
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            run.log_artifact(again, aliases=["same-content"])
    out(f"  identical content -> no new version: still {again.name}, now also 'same-content'")
    with wandb.init(project="seed-single") as run:
        changed = wandb.Artifact("artifact_name", "artifact_type")
        changed.add_file("image1.png")
        changed.add_file("image2.png")
        run.log_artifact(changed)
    _show(changed, out)

    out("2. Outside a run: artifact.save()")
    saved = wandb.Artifact("saved_outside_a_run", "dataset")
    saved.add_dir("dataset")
    saved.save(project="seed-single")
    _show(saved, out)

    out("3. Distributed runs: runs 1 and 2 upsert in parallel processes, run 3 finishes")
    project = "seed-distributed"
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "cairn.demo", "upsert", f"image{i}.png", project],
            env=os.environ.copy(),
        )
        for i in (1, 2)
    ]
    for proc in workers:
        if proc.wait() != 0:
            raise SystemExit(f"distributed worker failed with exit code {proc.returncode}")
    with wandb.init(project=project) as run:
        artifact = wandb.Artifact("artifact_name", "artifact_type")
        artifact.add_file("image3.png")
        run.finish_artifact(artifact, distributed_id="my_dist_artifact")
    _show(artifact, out)
    out(f"  files: {', '.join(artifact.manifest.entries)}")

    out("4. Incremental: a draft adds a file and removes a directory")
    with wandb.init(project="seed-incremental") as run:
        base = wandb.Artifact("my_artifact", "dataset")
        base.add_dir("dataset")
        run.log_artifact(base)
    _show(base, out)
    with wandb.init(job_type="modify dataset", project="seed-incremental") as run:
        saved_artifact = run.use_artifact("my_artifact:latest")
        draft_artifact = saved_artifact.new_draft()
        draft_artifact.add_file("file_to_add.txt")
        draft_artifact.remove("dir_to_remove/")
        run.log_artifact(draft_artifact)
    _show(draft_artifact, out)
    diff = wandb.Api(overrides={"project": "seed-incremental"}).diff(
        "my_artifact:v0", "my_artifact:v1"
    )
    for e in diff.added:
        out(f"  + {e.path} ({e.size} B)")
    for e in diff.removed:
        out(f"  - {e.path} ({e.size} B)")
    for old, new in diff.modified:
        out(f"  ~ {new.path} ({old.size} -> {new.size} B)")
    root = draft_artifact.download()
    out(f"  downloaded {draft_artifact.name} to {root}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "upsert":
        upsert_worker(sys.argv[2], sys.argv[3])
    else:
        main(sys.argv[1] if len(sys.argv) > 1 else "cairn-demo")
