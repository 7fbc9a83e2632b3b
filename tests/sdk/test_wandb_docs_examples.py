"""Acceptance: the artifact examples of W&B's published guides, run unchanged apart from
``import cairn as wandb`` (and placeholders such as ``<project>`` filled in), on the embedded
store and through a server.

One test per guide: construct an artifact, download and use it (also in part), explore the
graph, update it, aliases, tags, TTL, delete, distributed (parallel runs), incremental (new
drafts), references (file:// and s3://), the Registry (link and consume), models, tables,
run history (``run.log``) and summary metrics. The API calls are W&B's as the guides write
them; the surrounding text is ours. Where a guide shows a value that only W&B's cloud has (an
organisation name), a local one is used.
"""

from __future__ import annotations

import os
import pathlib
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest

import cairn as wandb
from tests.conftest import write

ENTITY_PROJECT = "docs"


def _files() -> None:
    """The local files the guides' examples refer to."""
    write("dataset.h5", "h5 bytes")
    write("hello_world.txt", "hello world")
    write("model.h5", "weights")
    write("file_to_add.txt", "added later")
    write("images/bike.png", "png bytes")
    write("images/car.png", "other png")
    write("dir_to_remove/old.txt", "old")
    write("path/file/a.txt", "a")


def test_construct_an_artifact() -> None:
    """Guide "Create an artifact": three steps, a file, a directory, a new file, save()."""
    _files()
    run = wandb.init(project="artifacts-example", job_type="add-dataset")
    artifact = wandb.Artifact(name="example_artifact", type="dataset")
    artifact.add_file(local_path="./dataset.h5", name="training_dataset")
    artifact.save()
    run.finish()

    with wandb.init(project="artifacts-example", job_type="add-more") as run:
        artifact = wandb.Artifact(name="more_files", type="dataset")
        artifact.add_file(local_path="hello_world.txt", name="optional-name")
        artifact.add_dir(local_path="path/file", name="optional-prefix")
        with artifact.new_file("hello.txt", mode="w") as f:
            f.write("hello!")
        run.log_artifact(artifact)

    api = wandb.Api()
    first = api.artifact("artifacts-example/example_artifact:latest")
    assert list(first.manifest.entries) == ["training_dataset"]
    more = api.artifact("artifacts-example/more_files:v0")
    assert sorted(more.manifest.entries) == ["hello.txt", "optional-name", "optional-prefix/a.txt"]


def test_download_and_use_an_artifact(tmp_path: pathlib.Path) -> None:
    """Guide "Download and use artifacts": inside a run, outside one, one file, another
    project's artifact."""
    _files()
    with wandb.init(project="bikes") as run:
        artifact = wandb.Artifact("bike-dataset", type="dataset")
        artifact.add_dir("images")
        run.log_artifact(artifact)

    run = wandb.init(project="bikes", job_type="train")
    artifact = run.use_artifact("bike-dataset:latest")
    artifact_dir = artifact.download()
    assert (pathlib.Path(artifact_dir) / "bike.png").read_text() == "png bytes"
    entry = artifact.get_entry("bike.png")
    path = entry.download()
    assert pathlib.Path(path).read_text() == "png bytes"
    run.finish()

    api = wandb.Api()
    entity = api.default_entity
    artifact = api.artifact(f"{entity}/bikes/bike-dataset:latest")
    root = artifact.download(root=str(tmp_path / "outside"))
    assert sorted(os.listdir(root)) == ["bike.png", "car.png"]

    with wandb.init(project="another-project") as run:
        artifact = run.use_artifact(artifact_or_name=f"{entity}/bikes/bike-dataset:latest")
        assert artifact.name == "bike-dataset:v0"
        assert run.id in [r.id for r in artifact.used_by()]


def test_update_an_artifact() -> None:
    """Guide "Update an artifact": during a run, through the public API, a collection."""
    _files()
    with wandb.init(project="example") as run:
        art = wandb.Artifact("artifact", type="dataset", metadata={"oldKey": "old"})
        art.add_file("dataset.h5")
        run.log_artifact(art)

    with wandb.init(project="example") as run:
        artifact = run.use_artifact("artifact:latest")
        artifact.description = "described during a run"
        artifact.save()

    api = wandb.Api()
    entity = api.default_entity
    artifact = api.artifact(f"{entity}/example/artifact:latest")
    assert artifact.description == "described during a run"
    artifact.description = "My new description"
    artifact.metadata["oldKey"] = "new value"
    artifact.metadata = {"newKey": "new value"}
    artifact.aliases.append("best")
    artifact.aliases.remove("latest")
    artifact.save()
    again = api.artifact(f"{entity}/example/artifact:best")
    assert again.description == "My new description"
    assert again.metadata == {"newKey": "new value"} and again.aliases == ["best"]
    again.aliases = ["replaced"]
    again.save()
    assert api.artifact(f"{entity}/example/artifact:replaced").aliases == ["replaced"]

    collection = api.artifact_collection(type="dataset", collection="example/artifact")
    collection.name = "renamed-collection"
    collection.description = "What the collection holds."
    collection.save()
    assert api.artifact("example/renamed-collection:replaced").description == "My new description"


def test_aliases_and_tags() -> None:
    """Guides "Create a custom alias" and "Create and manage tags"."""
    _files()
    with wandb.init(project="aliases") as run:
        artifact = wandb.Artifact("run-3nq3ctyy-bike-model", type="model")
        artifact.add_file("model.h5")
        run.log_artifact(artifact, aliases=["latest", "best-ap50"])
    with wandb.init(project="aliases") as run:
        artifact = wandb.Artifact(name="tagged", type="dataset")
        artifact.add_file("dataset.h5")
        run.log_artifact(artifact, tags=["tag1", "tag2"])

    api = wandb.Api()
    model = api.artifact("aliases/run-3nq3ctyy-bike-model:best-ap50")
    assert sorted(model.aliases) == ["best-ap50", "latest"]
    artifact = api.artifact("aliases/tagged:latest")
    assert artifact.tags == ["tag1", "tag2"]
    artifact.tags = ["tag1"]
    artifact.tags.append("tag3")
    artifact.save()
    artifact.tags.remove("tag1")
    artifact.save()
    assert api.artifact("aliases/tagged:v0").tags == ["tag3"]


def test_ttl_policies() -> None:
    """Guide "Manage artifact data retention": TTL when logging, edited later, inherited,
    removed, and for every version of a collection."""
    _files()
    run = wandb.init(project="my-project-name")
    artifact = wandb.Artifact(name="artifact-name", type="dataset")
    artifact.add_file("dataset.h5")
    artifact.ttl = timedelta(days=30)  # Set TTL policy
    run.log_artifact(artifact)
    run.finish()

    api = wandb.Api()
    artifact = api.artifact("my-project-name/artifact-name:latest")
    assert artifact.ttl == timedelta(days=30)
    artifact.ttl = timedelta(days=365 * 2)  # Two years
    artifact.save()
    assert api.artifact("my-project-name/artifact-name:v0").ttl == timedelta(days=730)
    artifact.ttl = wandb.ArtifactTTL.INHERIT
    artifact.save()
    artifact.ttl = None  # no TTL: kept until deleted
    artifact.save()
    assert api.artifact("my-project-name/artifact-name:v0").ttl is None

    with wandb.init(project="my-project-name") as run:
        second = wandb.Artifact(name="artifact-name", type="dataset")
        second.add_file("model.h5")
        run.log_artifact(second)
    for art in api.artifacts("dataset", "my-project-name/artifact-name"):
        art.ttl = timedelta(days=7)
        art.save()
    assert [a.ttl for a in api.artifact_versions("dataset", "my-project-name/artifact-name")] == [
        timedelta(days=7),
        timedelta(days=7),
    ]


def test_delete_artifacts() -> None:
    """Guide "Delete an artifact": one version, with aliases, many versions, versions with an
    alias, versions without one, a whole collection."""
    _files()
    for content in ("one", "two", "three", "four"):
        with wandb.init(project="project_name") as run:
            artifact = wandb.Artifact("artifact", type="dataset")
            artifact.add_file(write("data.txt", content))
            run.log_artifact(artifact, aliases=["gold"] if content == "two" else None)
    api = wandb.Api()
    entity = api.default_entity

    artifact = api.artifact(f"{entity}/project_name/artifact:v0")
    artifact.delete()
    artifact = api.artifact(f"{entity}/project_name/artifact:gold")
    artifact.delete(delete_aliases=True)

    # Delete every version without an alias ("latest" is one: the newest stays).
    for v in api.artifact_versions("dataset", "project_name/artifact"):
        if len(v.aliases) == 0:
            v.delete()
    assert [a.name for a in api.artifact_versions("dataset", "project_name/artifact")] == [
        "artifact:v3"
    ]

    # Delete versions with a given alias.
    for v in api.artifacts("dataset", "project_name/artifact"):
        if "latest" in v.aliases:
            v.delete(delete_aliases=True)
    assert not api.artifact_exists("project_name/artifact:latest")

    # Delete the artifacts every run of a project logged.
    with wandb.init(project="project_name") as run:
        extra = wandb.Artifact("by-run", type="model")
        extra.add_file("model.h5")
        run.log_artifact(extra)
    runs = api.runs(f"{entity}/project_name")
    for run in runs:
        for artifact in run.logged_artifacts():
            artifact.delete(delete_aliases=True)
    assert not api.artifact_exists("project_name/by-run:v0")

    # Delete a whole collection.
    with wandb.init(project="project_name") as run:
        coll = wandb.Artifact("artifact_collection_name", type="dataset")
        coll.add_file("dataset.h5")
        run.log_artifact(coll)
    collection = api.artifact_collection(
        "dataset", f"{entity}/project_name/artifact_collection_name"
    )
    collection.delete()
    assert not api.artifact_collection_exists("project_name/artifact_collection_name", "dataset")


def test_distributed_runs_build_one_artifact() -> None:
    """Guide "Create and log distributed artifacts": writer runs upsert parts of a
    PartitionedTable, one run finishes it."""
    artifact_type = "dataset"
    artifact_name = "parallel-artifact"
    table_name = "distributed_table"
    parts_path = "parts"
    num_parallel = 5
    group_name = f"writer-group-{round(time.time())}-{uuid.uuid4().hex[:4]}"

    def train(i: int) -> None:
        with wandb.init(project="distributed", group=group_name) as run:
            artifact = wandb.Artifact(name=artifact_name, type=artifact_type)
            table = wandb.Table(columns=["a", "b", "c"], data=[[i, i * 2, 2**i]])
            artifact.add(table, f"{parts_path}/table_{i}")
            run.upsert_artifact(artifact)

    for i in range(num_parallel):  # W&B's guide launches these with ray; here one by one
        train(i)

    with wandb.init(project="distributed", group=group_name) as run:
        artifact = wandb.Artifact(artifact_name, type=artifact_type)
        artifact.add(wandb.data_types.PartitionedTable(parts_path), table_name)
        run.finish_artifact(artifact)

    logged = wandb.Api().artifact(f"distributed/{artifact_name}:latest")
    table = logged.get(table_name)
    rows = sorted(row for _, row in table.iterrows())  # type: ignore[union-attr]
    assert rows == [[i, i * 2, 2**i] for i in range(num_parallel)]


def test_incremental_changes_with_new_drafts() -> None:
    """Guide "Create a new artifact version from an existing version": inside and outside a
    run."""
    _files()
    with wandb.init(project="incremental") as run:
        art = wandb.Artifact("my_artifact", type="dataset")
        art.add_file("dataset.h5")
        art.add_dir("dir_to_remove", name="dir_to_remove")
        run.log_artifact(art)

    with wandb.init(project="incremental") as run:
        saved_artifact = run.use_artifact("my_artifact:latest")
        draft_artifact = saved_artifact.new_draft()
        draft_artifact.add_file("file_to_add.txt")
        draft_artifact.remove("dir_to_remove/")
        run.log_artifact(draft_artifact)

    client = wandb.Api()
    saved_artifact = client.artifact("incremental/my_artifact:latest")
    assert sorted(saved_artifact.manifest.entries) == ["dataset.h5", "file_to_add.txt"]
    draft_artifact = saved_artifact.new_draft()
    draft_artifact.add_file("model.h5")
    draft_artifact.save()
    newest = client.artifact("incremental/my_artifact:latest")
    assert newest.name == "my_artifact:v2"
    assert sorted(newest.manifest.entries) == ["dataset.h5", "file_to_add.txt", "model.h5"]

    with wandb.init(project="incremental") as run:  # W&B's incremental=True
        artifact = wandb.Artifact(name="my_artifact", type="dataset", incremental=True)
        artifact.add_file("hello_world.txt")
        run.log_artifact(artifact)
    assert "hello_world.txt" in client.artifact("incremental/my_artifact:v3").manifest.entries


def test_track_external_files_on_a_filesystem(tmp_path: pathlib.Path) -> None:
    """Guide "Track external files", filesystem references."""
    mount = tmp_path / "mount" / "datasets" / "mnist"
    (mount / "train").mkdir(parents=True)
    (mount / "train" / "0.png").write_text("zero")
    (mount / "labels.csv").write_text("id,label\n0,0\n")
    run = wandb.init()
    artifact = wandb.Artifact("mnist", type="dataset")
    artifact.add_reference(f"file://{mount}/")
    run.log_artifact(artifact)
    run.finish()

    with wandb.init() as run:
        artifact = run.use_artifact("mnist:latest", type="dataset")
        artifact_dir = artifact.download()
    assert (pathlib.Path(artifact_dir) / "train" / "0.png").read_text() == "zero"
    assert (pathlib.Path(artifact_dir) / "labels.csv").exists()


def test_track_external_files_in_s3(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Guide "Track external files", an S3 bucket (a real S3 server: moto)."""
    import boto3

    for var, value in {
        "AWS_ENDPOINT_URL": s3.endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(var, value)
    client = boto3.client("s3")
    bucket = f"my-bucket-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    for i in range(3):
        client.put_object(Bucket=bucket, Key=f"datasets/mnist/{i}.png", Body=f"img{i}".encode())

    run = wandb.init()
    artifact = wandb.Artifact("mnist", type="dataset")
    artifact.add_reference(f"s3://{bucket}/datasets/mnist")
    run.log_artifact(artifact)
    run.finish()

    with wandb.init() as run:
        artifact = run.use_artifact("mnist:latest", type="dataset")
        artifact_dir = artifact.download()
    assert sorted(os.listdir(artifact_dir)) == ["0.png", "1.png", "2.png"]


def test_link_to_a_registry_and_consume_it() -> None:
    """Guide "Link an artifact version to a registry", then "Download and use an artifact from
    a registry"."""
    _files()
    REGISTRY_NAME = "model"
    COLLECTION_NAME = "churn-classifier"
    run = wandb.init(project="registry-example")
    artifact = wandb.Artifact(name="churn-model", type="model")
    artifact.add_file(local_path="model.h5")
    run.log_artifact(artifact)
    target_path = f"wandb-registry-{REGISTRY_NAME}/{COLLECTION_NAME}"
    run.link_artifact(artifact=artifact, target_path=target_path)
    run.finish()

    ORG_NAME = "my-org"  # W&B's organisation: cairn has one registry entity, any name does
    ALIAS = "latest"
    with wandb.init(project="consumer") as run:
        used = run.use_artifact(
            artifact_or_name=f"{ORG_NAME}/wandb-registry-{REGISTRY_NAME}/{COLLECTION_NAME}:{ALIAS}"
        )
        path = used.download()
    assert (pathlib.Path(path) / "model.h5").read_text() == "weights"

    api = wandb.Api()
    linked = api.artifact(name=f"wandb-registry-{REGISTRY_NAME}/{COLLECTION_NAME}:v0")
    assert linked.source_name == "churn-model:v0"
    linked.aliases.append("production")
    linked.save()
    assert api.artifact(f"wandb-registry-{REGISTRY_NAME}/{COLLECTION_NAME}:production").id


def test_log_metrics_and_read_the_history() -> None:
    """Guides "Log objects and media" and "Export data" (public API): run.log, summary,
    history, scan_history."""
    with wandb.init(project="metrics") as run:
        for epoch in range(3):
            run.log({"epoch": epoch, "loss": 1.0 / (epoch + 1)})
        run.summary["best_loss"] = 1 / 3
        path = run.path
    api = wandb.Api()
    run = api.run(path)
    history = run.history()
    assert list(history["loss"]) == [1.0, 0.5, 1 / 3]
    losses = [row["loss"] for row in run.scan_history(keys=["loss"])]
    assert losses == [1.0, 0.5, 1 / 3]
    assert run.summary["best_loss"] == 1 / 3


def test_explore_the_artifact_graph_and_download_part_of_an_artifact(
    tmp_path: pathlib.Path,
) -> None:
    """Guides "Explore artifact graphs" (walk from an artifact to runs and back) and "Download
    and use artifacts" (a part of an artifact, one entry, verify)."""
    _files()
    with wandb.init(project="graph", job_type="upload") as run:
        artifact = wandb.Artifact("bikes", type="dataset")
        artifact.add_dir("images", name="images")
        artifact.add_file("dataset.h5")
        run.log_artifact(artifact)
    with wandb.init(project="graph", job_type="train") as run:
        run.use_artifact("bikes:latest")

    api = wandb.Api()
    artifact = api.artifact("graph/bikes:latest")
    producer_run = artifact.logged_by()
    assert producer_run is not None and producer_run.job_type == "upload"
    logged_artifacts = producer_run.logged_artifacts()
    assert [a.name for a in logged_artifacts] == ["bikes:v0"]
    consumer_runs = artifact.used_by()
    assert [r.job_type for r in consumer_runs] == ["train"]
    for run in consumer_runs:
        assert [a.name for a in run.used_artifacts()] == ["bikes:v0"]

    root = artifact.download(root=str(tmp_path / "part"), path_prefix="images/")
    assert sorted(os.listdir(pathlib.Path(root) / "images")) == ["bike.png", "car.png"]
    assert not (pathlib.Path(root) / "dataset.h5").exists()
    entry = artifact.get_entry("images/bike.png")
    assert pathlib.Path(entry.download(root=str(tmp_path / "one"))).read_text() == "png bytes"
    full = artifact.download(root=str(tmp_path / "full"))
    artifact.verify(root=full)


def test_log_models() -> None:
    """Guide "Log models": log_model, use_model, link_model."""
    _files()
    run = wandb.init(project="models", entity=wandb.Api().default_entity)
    run.log_model(path="model.h5", name="my-model")
    run.link_model(path="model.h5", registered_model_name="churn-model")
    run.finish()

    with wandb.init(project="models") as run:
        downloaded_model_path = run.use_model(name="my-model:latest")
    assert pathlib.Path(downloaded_model_path).read_text() == "weights"

    api = wandb.Api()
    registered = api.artifact("wandb-registry-model/churn-model:latest")
    assert registered.type == "model" and registered.source_name.startswith("run-")


def test_log_tables() -> None:
    """Guide "Log tables": a table logged to a run, then to and from an artifact."""
    run = wandb.init(project="table-test")
    my_table = wandb.Table(columns=["a", "b"], data=[["a1", "b1"], ["a2", "b2"]])
    run.log({"Table Name": my_table})
    my_table.add_data("a3", "b3")
    artifact = wandb.Artifact("my_table_artifact", type="dataset")
    artifact.add(my_table, "my_table")
    run.log_artifact(artifact)
    run_id = run.id
    run.finish()

    with wandb.init(project="table-test") as run:
        my_table = run.use_artifact("my_table_artifact:latest").get("my_table")
        assert my_table.get_column("a") == ["a1", "a2", "a3"]
    logged = wandb.Api().artifact(f"table-test/run-{run_id}-Table_Name:latest")
    assert logged.type == "run_table" and logged.get("Table Name").data == [
        ["a1", "b1"],
        ["a2", "b2"],
    ]


def test_log_summary_metrics() -> None:
    """Guide "Log summary metrics": a best value by hand, define_metric's min and max, and the
    public API's summary of a finished run."""
    import random

    import numpy as np

    random.seed(1)
    wandb.init(project="summary-demo")
    wandb.define_metric("loss", summary="min")
    wandb.define_metric("loss", summary="max")
    wandb.define_metric("acc", summary="min")
    wandb.define_metric("acc", summary="max")
    logged = []
    best_accuracy = 0.0
    for i in range(10):
        log_dict = {
            "loss": random.uniform(0, 1 / (i + 1)),
            "acc": random.uniform(1 / (i + 1), 1),
        }
        logged.append(log_dict)
        wandb.log(log_dict)
        if log_dict["acc"] > best_accuracy:
            wandb.summary["best_accuracy"] = log_dict["acc"]
            best_accuracy = log_dict["acc"]
    path = wandb.run.path
    wandb.finish()

    api = wandb.Api()
    run = api.run(path)
    losses = [d["loss"] for d in logged]
    assert run.summary["loss"] == {"min": min(losses), "max": max(losses)}
    assert run.summary["best_accuracy"] == max(d["acc"] for d in logged)
    run.summary["tensor"] = np.random.random(1000)
    run.summary.update()
    stats = api.run(path).summary["tensor"]
    assert stats["_type"] == "numpy.ndarray" and 0 <= stats["min"] <= stats["max"] <= 1
