"""W&B's ``ArtifactCollection``: ``artifact.collection``, tags, rename, description, delete."""

from __future__ import annotations

import pytest

import cairn
from cairn.errors import ArtifactNotFoundError
from tests.conftest import write


def log(content: str, name: str = "ds", **kw: object) -> cairn.Artifact:
    art = cairn.Artifact(name, "dataset", description="first description")
    art.add_file(write("src/a.txt", content), name="a.txt")
    with cairn.init(project="p") as run:
        return run.log_artifact(art, **kw)  # type: ignore[arg-type]


def api() -> cairn.Api:
    return cairn.Api(overrides={"project": "p"})


def test_artifact_collection_and_its_fields() -> None:
    v0 = log("0", aliases=["best"])
    log("1", tags=["checked"])
    coll = v0.collection
    assert (coll.name, coll.type, coll.project) == ("ds", "dataset", "p")
    assert coll.description == "first description"
    assert coll.aliases == ["latest", "best"] and coll.tags == []
    assert coll.created_at and coll.created_at.endswith("Z")
    assert [a.version for a in coll.artifacts()] == ["v1", "v0"]
    assert [a.version for a in coll.versions()] == ["v1", "v0"]
    assert v0.source_collection == coll and coll.is_sequence()
    same = api().artifact_collection("dataset", "ds")
    assert same == coll and same.version_count == 2
    with pytest.raises(ArtifactNotFoundError):
        api().artifact_collection("model", "ds")
    assert [a.version for a in api().artifacts("dataset", "ds", tags="checked")] == ["v1"]
    assert [a.version for a in api().artifacts("dataset", "ds", tags=["checked"])] == ["v1"]


def test_collection_tags_and_description_are_validated_and_saved() -> None:
    coll = log("0").collection
    coll.tags = ["nightly", "team-a", "q3 run"]
    coll.description = "curated"
    coll.save()
    again = api().artifact_collection("dataset", "ds")
    assert again.tags == ["nightly", "q3 run", "team-a"] and again.description == "curated"
    for bad in (["bad/tag"], [""], [" lead"], ["x" * 200], ["a:b"]):
        with pytest.raises(ValueError, match="tag"):
            again.tags = bad
    again.tags.append("bad/tag")  # appended without the setter: refused at save, nothing changes
    with pytest.raises(ValueError, match="tag"):
        again.save()
    assert api().artifact_collection("dataset", "ds").tags == ["nightly", "q3 run", "team-a"]
    art = cairn.Artifact("ds", "dataset")
    art.add_file(write("src/b.txt", "b"), name="b.txt")
    with cairn.init(project="p") as run, pytest.raises(ValueError, match="tag"):
        run.log_artifact(art, tags=["no/slash"])
    assert [a.version for a in api().artifacts("dataset", "ds")] == ["v0"]  # nothing logged


def test_rename_a_collection() -> None:
    log("0", aliases=["best"])
    log("x", name="other")
    coll = api().artifact_collection("dataset", "ds")
    coll.name = "other"
    with pytest.raises(ValueError, match="already exists"):
        coll.save()
    coll = api().artifact_collection("dataset", "ds")
    coll.name = "renamed"
    coll.save()
    assert coll.name == "renamed"
    assert api().artifact("renamed:best").version == "v0"
    assert not api().artifact_exists("ds:v0")
    with pytest.raises(ValueError):
        coll.name = "no spaces allowed"
    assert log("1", name="renamed").version == "v1"  # numbering goes on


def test_delete_a_collection_and_all_its_versions() -> None:
    log("0", aliases=["best"])
    log("1")
    log("kept", name="other")
    api().artifact_collection("dataset", "ds").delete()
    assert not api().artifact_exists("ds")
    assert not api().artifact_collection_exists("ds", "dataset")
    assert [c.name for c in api().artifact_collections("p", "dataset")] == ["other"]
    assert api().artifact("other:v0").version == "v0"
    assert log("again").version == "v0"  # a new collection
