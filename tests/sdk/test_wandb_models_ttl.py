"""W&B's ``log_model`` / ``use_model`` and ``Artifact.ttl`` (saved, read back, expiry)."""

from __future__ import annotations

import datetime as dt
import pathlib
import time

import pytest

import cairn
from cairn.errors import ArtifactNotLoggedError
from tests.conftest import write


def test_log_model_and_use_model() -> None:
    write("out/model.pt", "weights")
    write("out/dir/a.bin", "a")
    write("out/dir/b.bin", "b")
    with cairn.init(project="p") as run:
        single = run.log_model("out/model.pt", aliases=["prod"])
        many = run.log_model("out/dir", name="big-model")
        run_id = run.id
    assert single.type == "model" and single.name == f"run-{run_id}-model.pt:v0"
    assert single.aliases == ["latest", "prod"] and many.name == "big-model:v0"
    with cairn.init(project="p") as run:
        path = run.use_model(f"run-{run_id}-model.pt:prod")
        assert pathlib.Path(path).is_file() and pathlib.Path(path).read_text() == "weights"
        root = cairn.use_model("big-model:latest")
        assert sorted(p.name for p in pathlib.Path(root).iterdir()) == ["a.bin", "b.bin"]
        assert {a.name for a in run.used_artifacts()} == {single.name, many.name}
        data = cairn.Artifact("data", "dataset")
        data.add_file(write("d.txt", "d"))
        run.log_artifact(data)
        with pytest.raises(ValueError, match="model"):
            run.use_model("data:latest")


def test_ttl_is_saved_and_read_back_through_every_api() -> None:
    art = cairn.Artifact("ds", "dataset")
    art.add_file(write("a.txt", "a"))
    with pytest.raises(ArtifactNotLoggedError):
        _ = art.ttl  # inherited: known once logged
    for bad in (dt.timedelta(0), dt.timedelta(seconds=-5), 30):
        with pytest.raises(ValueError):
            art.ttl = bad  # type: ignore[assignment]
    art.ttl = dt.timedelta(days=30)
    with cairn.init(project="p") as run:
        run.log_artifact(art)
    assert art.ttl == dt.timedelta(days=30)
    api = cairn.Api(overrides={"project": "p"})
    assert api.artifact("ds:v0").ttl == dt.timedelta(days=30)
    with cairn.init(project="p") as run:
        assert run.use_artifact("ds:latest").ttl == dt.timedelta(days=30)
    got = api.artifact("ds:v0")
    got.ttl = None
    got.save()
    assert api.artifact("ds:v0").ttl is None
    got.ttl = cairn.ArtifactTTL.INHERIT
    with pytest.raises(ArtifactNotLoggedError):
        _ = got.ttl  # changed to inherit, not saved yet
    got.save()
    assert got.ttl is None  # no default TTL in cairn: inherited means none
    plain = cairn.Artifact("plain", "dataset")
    plain.add_file(write("b.txt", "b"))
    with cairn.init(project="p") as run:
        run.log_artifact(plain)
    assert plain.ttl is None
    from click.testing import CliRunner

    from cairn.cli import cli

    got.ttl = dt.timedelta(hours=1)
    got.save()
    out = CliRunner().invoke(cli, ["artifact", "versions", "p/ds", "--json"])
    assert out.exit_code == 0 and __import__("json").loads(out.stdout)[0]["ttl_seconds"] == 3600


def _wait_until_gone(api: cairn.Api, name: str) -> None:
    for _ in range(100):
        if not api.artifact_exists(name):
            return
        time.sleep(0.1)
    raise AssertionError(f"{name} never expired")


def test_expired_versions_disappear_from_queries() -> None:
    for i in range(2):
        art = cairn.Artifact("ds", "dataset")
        art.add_file(write("a.txt", str(i)))
        if i == 1:
            art.ttl = dt.timedelta(seconds=0.5)
        with cairn.init(project="p") as run:
            run.log_artifact(art, aliases=["fresh"] if i == 1 else None)
            logger = run.id
    api = cairn.Api(overrides={"project": "p"})
    _wait_until_gone(api, "ds:v1")
    assert not api.artifact_exists("ds:fresh")
    assert api.artifact("ds:latest").version == "v0"  # the newest that is still alive
    assert [a.version for a in api.artifact_versions("dataset", "ds")] == ["v0"]
    assert api.artifact_collection("dataset", "ds").version_count == 1
    assert api.run(f"p/{logger}").logged_artifacts() == []


@pytest.mark.embedded_only
def test_gc_removes_expired_content() -> None:
    art = cairn.Artifact("ds", "dataset")
    art.add_file(write("big.bin", "x" * 300_000))
    art.ttl = dt.timedelta(seconds=0.5)
    with cairn.init(project="p") as run:
        run.log_artifact(art)
    _wait_until_gone(cairn.Api(overrides={"project": "p"}), "ds:v0")
    report = cairn.sdk.collect_garbage(grace_seconds=0)
    assert report.removed_blobs >= 2  # the file and the manifest page
    assert cairn.sdk.list_versions("p/ds") == []


@pytest.mark.embedded_only
def test_a_table_added_to_a_second_artifact_outlives_the_first_through_gc() -> None:
    table = cairn.Table(columns=["a"], data=[[i] for i in range(50)])
    first = cairn.Artifact("first", "dataset")
    first.add(table, "rows")
    with cairn.init(project="p") as run:
        run.log_artifact(first)
    second = cairn.Artifact("second", "dataset")
    second.add(table, "rows")  # the same content: stored once
    with cairn.init(project="p") as run:
        run.log_artifact(second)
    assert first.get_entry("rows.table.json").digest == second.get_entry("rows.table.json").digest
    first.delete(delete_aliases=True)
    cairn.sdk.collect_garbage(grace_seconds=0)
    back = cairn.Api(overrides={"project": "p"}).artifact("second:v0").get("rows")
    assert back.data == [[i] for i in range(50)]
