"""The seed's code, run verbatim with ``import cairn as wandb``."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import cairn as wandb
from tests.conftest import write


def run_script(code: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_single_run_versions_from_scratch() -> None:
    write("image1.png", b"\x89PNG one")
    with wandb.init() as run:
        artifact = wandb.Artifact("artifact_name", "artifact_type")
        # add files and assets with .add, .add_file, .add_dir, .add_reference
        artifact.add_file("image1.png")
        run.log_artifact(artifact)
    assert artifact.version == "v0"
    assert wandb.Api().artifact("artifact_name:latest").version == "v0"

    # Logging the same contents again makes no new version; changed contents make v1.
    with wandb.init() as run, pytest.warns(UserWarning, match="identical"):
        artifact = wandb.Artifact("artifact_name", "artifact_type")
        artifact.add_file("image1.png")
        run.log_artifact(artifact)
    assert artifact.version == "v0"
    write("image1.png", b"\x89PNG changed")
    with wandb.init() as run:
        artifact = wandb.Artifact("artifact_name", "artifact_type")
        artifact.add_file("image1.png")
        run.log_artifact(artifact)
    assert artifact.version == "v1"


def test_the_demo_shows_each_alias_once() -> None:
    from cairn.demo import _show

    write("image1.png", b"img")
    with wandb.init() as run:
        artifact = wandb.Artifact("artifact_name", "artifact_type")
        artifact.add_file("image1.png")
        run.log_artifact(artifact, aliases=["best"])
    lines: list[str] = []
    _show(artifact, lines.append)
    assert "aliases [best, latest]" in lines[0] or "aliases [latest, best]" in lines[0], lines


def test_outside_a_run_save() -> None:
    write("image1.png", b"img")
    artifact = wandb.Artifact("artifact_name", "artifact_type")
    artifact.add_file("image1.png")
    artifact.save()
    assert artifact.version == "v0"
    run = artifact.logged_by()
    assert run is not None and run.job_type == "auto"


@pytest.mark.process_server
def test_distributed_runs_in_three_processes() -> None:
    for i in (1, 2, 3):
        write(f"image{i}.png", f"image {i}")
    run_1 = """
        import cairn as wandb
        with wandb.init() as run:
            artifact = wandb.Artifact("artifact_name", "artifact_type")
            artifact.add_file("image1.png")
            run.upsert_artifact(artifact, distributed_id="my_dist_artifact")
    """
    run_2 = run_1.replace("image1.png", "image2.png")
    procs = [
        subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)]) for code in (run_1, run_2)
    ]
    assert [p.wait() for p in procs] == [0, 0]
    run_script(
        """
        import cairn as wandb
        with wandb.init() as run:
            artifact = wandb.Artifact("artifact_name", "artifact_type")
            artifact.add_file("image3.png")
            run.finish_artifact(artifact, distributed_id="my_dist_artifact")
        """
    )
    art = wandb.Api().artifact("artifact_name:latest")
    assert art.version == "v0"
    assert list(art.manifest.entries) == ["image1.png", "image2.png", "image3.png"]
    assert len(art.written_by()) == 3


def test_incremental_draft() -> None:
    write("file_to_add.txt", "new")
    write("data/dir_to_remove/a.txt", "dup")
    write("data/keep.txt", "keep")
    with wandb.init() as run:
        base = wandb.Artifact("my_artifact", "dataset")
        base.add_dir("data")
        run.log_artifact(base)
    with wandb.init(job_type="modify dataset") as run:
        saved_artifact = run.use_artifact(
            "my_artifact:latest"
        )  # fetch it and mark it as the run's input
        draft_artifact = saved_artifact.new_draft()  # create a draft version
        draft_artifact.add_file("file_to_add.txt")  # modify a subset of files in the draft
        draft_artifact.remove("dir_to_remove/")
        run.log_artifact(draft_artifact)  # log: a new version, the run's output
    assert draft_artifact.version == "v1"
    assert list(draft_artifact.manifest.entries) == ["file_to_add.txt", "keep.txt"]
    assert draft_artifact.base_version is not None and draft_artifact.base_version.version == "v0"
