"""End-to-end behaviour of Artifact, Run and Api on the embedded store."""

from __future__ import annotations

import os
import pathlib
import warnings

import pytest

import cairn
from cairn.errors import (
    ArtifactFinalizedError,
    ArtifactNotFoundError,
    ArtifactNotLoggedError,
    RunFinishedError,
    TypeConflictError,
    UsageError,
)
from tests.conftest import write


def log(
    name: str = "ds", type: str = "dataset", files: dict[str, str] | None = None, **kw: object
) -> cairn.Artifact:
    art = cairn.Artifact(name, type)
    for path, content in (files or {"a.txt": "a"}).items():
        art.add_file(write(f"src/{path}", content), name=path)
    with cairn.init() as run:
        run.log_artifact(art, **kw)  # type: ignore[arg-type]
    return art


def test_properties_before_and_after_logging() -> None:
    art = cairn.Artifact("ds", "dataset", description="desc", metadata={"rows": 2})
    assert art.name == "ds" and art.type == "dataset" and art.state == "PENDING" and art.id is None
    assert art.description == "desc" and art.metadata == {"rows": 2}
    for prop in (
        "version",
        "aliases",
        "entity",
        "project",
        "qualified_name",
        "file_count",
        "created_at",
    ):
        with pytest.raises(ArtifactNotLoggedError):
            getattr(art, prop)
    assert not hasattr(art, "version")  # ArtifactNotLoggedError is an AttributeError, as in W&B
    art.add_file(write("a.txt", "hello"))
    digest_before = art.digest
    assert art.size == 5
    with cairn.init(project="p1", entity="team") as run:
        run.log_artifact(art, aliases=["best"], tags=["raw"])
    assert art.state == "COMMITTED" and art.id
    assert art.name == "ds:v0" and art.version == "v0"
    assert art.qualified_name == "team/p1/ds:v0"
    assert art.aliases == ["latest", "best"] and art.tags == ["raw"]
    assert art.digest == digest_before and art.digest.startswith("sha256:")
    assert art.file_count == 1 and art.size == 5
    assert art.project == "p1" and art.entity == "team"
    assert art.created_at.endswith("Z") and art.updated_at
    assert art.wait() is art


def test_logged_artifacts_are_immutable() -> None:
    art = log()
    for call in (
        lambda: art.add_file(write("b.txt", "b")),
        lambda: art.add_dir("."),
        lambda: art.remove("a.txt"),
        lambda: art.add_reference("file:///etc/hostname"),
    ):
        with pytest.raises(ArtifactFinalizedError, match="new_draft"):
            call()
    with pytest.raises(ArtifactFinalizedError), art.new_file("c.txt"):
        pass


def test_dedup_moves_aliases_and_warns() -> None:
    first = log(files={"a.txt": "same"})
    second = log(files={"b.txt": "other"})
    assert second.version == "v1"
    with pytest.warns(UserWarning, match="identical"):
        again = log(files={"a.txt": "same"}, aliases=["again"])
    assert again.version == "v0" and again.id == first.id
    latest = cairn.Api().artifact("ds:latest")
    assert latest.version == "v0" and latest.aliases == ["latest", "again"]
    assert [a.version for a in cairn.Api().artifacts("dataset", "ds")] == ["v1", "v0"]


@pytest.mark.embedded_only
def test_identical_content_dedups_across_collections_in_storage(cairn_env: pathlib.Path) -> None:
    big = os.urandom(1_200_000)  # a blob file (under 1 MiB: packed)
    for name in ("one", "two"):
        art = cairn.Artifact(name, "model")
        art.add_file(write(f"{name}.bin", big))
        with cairn.init() as run:
            run.log_artifact(art)
    blobs = pathlib.Path(cairn_env / "store" / "blobs" / "sha256")
    assert len([p for p in blobs.rglob("*") if p.is_file()]) == 1


def test_same_name_other_type_is_refused() -> None:
    log("thing", "dataset")
    with pytest.raises(TypeConflictError, match="dataset"):
        log("thing", "model")


def test_add_file_same_path_twice() -> None:
    art = cairn.Artifact("ds", "dataset")
    art.add_file(write("x/a.txt", "one"), name="a.txt")
    art.add_file(write("y/a.txt", "one"), name="a.txt")  # same content: fine
    with pytest.raises(ValueError, match="Cannot add the same path twice"):
        art.add_file(write("z/a.txt", "two"), name="a.txt")
    entry = art.add_file("z/a.txt", name="a.txt", overwrite=True)
    assert entry.size == 3 and entry.local_path is not None
    assert art.manifest.entries["a.txt"].digest == entry.digest


def test_add_file_is_tmp_names_by_digest() -> None:
    art = cairn.Artifact("ds", "dataset")
    entry = art.add_file(write("table.json", "{}"), name="media/table.json", is_tmp=True)
    assert entry.path.startswith("media/") and entry.path.endswith(".json")
    assert entry.path.split("/")[1].split(".")[0] == entry.digest[7:27]


def test_add_dir_with_prefix_and_merge() -> None:
    write("d/a.txt", "a")
    write("d/sub/b.txt", "b")
    art = cairn.Artifact("ds", "dataset")
    art.add_dir("d", name="data")
    assert sorted(art.manifest.entries) == ["data/a.txt", "data/sub/b.txt"]
    write("d/a.txt", "changed")
    with pytest.raises(ValueError, match="same path"):
        art.add_dir("d", name="data")
    art.add_dir("d", name="data", merge=True)
    assert art.manifest.entries["data/a.txt"].size == 7


def test_new_file_context_manager() -> None:
    art = cairn.Artifact("ds", "dataset")
    with art.new_file("notes/readme.md") as f:
        f.write("# hi")
    with pytest.raises(ValueError, match="already exists"), art.new_file("notes/readme.md"):
        pass
    with art.new_file("notes/readme.md", mode="w") as f:
        f.write("# replaced")
    with art.new_file("bin.dat", mode="wb") as f:
        f.write(b"\x00\x01")
    with cairn.init() as run:
        run.log_artifact(art)
    root = art.download()
    assert pathlib.Path(root, "notes", "readme.md").read_text() == "# replaced"
    assert pathlib.Path(root, "bin.dat").read_bytes() == b"\x00\x01"


def test_remove_paths_directories_and_entries() -> None:
    art = cairn.Artifact("ds", "dataset")
    for p in ("a.txt", "dir/b.txt", "dir/c.txt", "dirx/d.txt"):
        art.add_file(write(f"src/{p}", p), name=p)
    art.remove("dir")  # a directory, without the slash; "dirx/" is not inside it
    assert sorted(art.manifest.entries) == ["a.txt", "dirx/d.txt"]
    art.remove(art.manifest.entries["a.txt"])
    art.remove("dirx/")
    assert len(art.manifest.entries) == 0
    with pytest.raises(FileNotFoundError):
        art.remove("nothing")


def test_use_artifact_resolves_all_forms_and_records_lineage() -> None:
    log(aliases=["best"])
    log(files={"a.txt": "v1"})
    with cairn.init(project="uncategorized", job_type="train") as run:
        for ref in ("ds", "ds:latest", "ds:v1"):
            assert run.use_artifact(ref).version == "v1"
        assert run.use_artifact("ds:best").version == "v0"
        entity = run.entity
        assert run.use_artifact("uncategorized/ds:v0").version == "v0"
        assert run.use_artifact(f"{entity}/uncategorized/ds:v0", type="dataset").version == "v0"
        with pytest.raises(ValueError, match="type"):
            run.use_artifact("ds:v0", type="model")
        with pytest.raises(ArtifactNotFoundError):
            run.use_artifact("ds:v9")
        with pytest.raises(ArtifactNotFoundError):
            run.use_artifact("missing:latest")
        run_id = run.id
    v0 = cairn.Api().artifact("ds:v0")
    assert [r.id for r in v0.used_by()] == [run_id]
    assert {a.version for a in cairn.Api().run(run_id).used_artifacts()} == {"v0", "v1"}
    logger = v0.logged_by()
    assert logger is not None and [a.version for a in logger.logged_artifacts()] == ["v0"]


def test_log_artifact_from_a_path() -> None:
    write("out/model.pt", "weights")
    with cairn.init() as run:
        art = run.log_artifact("out", name="model", type="model")
        single = run.log_artifact("out/model.pt")
    assert art.version == "v0" and list(art.manifest.entries) == ["model.pt"]
    assert single.name == f"run-{run.id}-model.pt:v0" and single.type == "unspecified"


def test_aliases_tags_description_metadata_can_be_saved_later() -> None:
    art = log()
    art.aliases.append("prod")
    art.tags = ["checked"]
    art.description = "reviewed"
    art.metadata = {"acc": 0.9}
    art.save()
    again = cairn.Api().artifact("ds:prod")
    assert again.id == art.id and again.description == "reviewed"
    assert again.metadata == {"acc": 0.9} and again.tags == ["checked"]
    again.aliases = []
    again.save()
    assert not cairn.Api().artifact_exists("ds:prod")


def test_delete_versions() -> None:
    v0 = log(files={"a": "0"})
    v1 = log(files={"a": "1"}, aliases=["keep"])
    with pytest.raises(UsageError, match="keep"):
        v1.delete()
    v1.delete(delete_aliases=True)
    assert v1.state == "DELETED"
    assert cairn.Api().artifact("ds:latest").id == v0.id
    assert log(files={"a": "2"}).version == "v2"


def test_runs_finish_and_refuse_work_after() -> None:
    with cairn.init(config={"lr": 0.1}) as run:
        run.config.epochs = 3
        assert cairn.run is run
    assert cairn.run is None
    assert run.state == "finished"
    assert cairn.Api().run(run.id).config == {"lr": 0.1, "epochs": 3}
    with pytest.raises(RunFinishedError, match=r"cairn\.init"):
        run.log_artifact(cairn.Artifact("x", "t"))
    with pytest.raises(RuntimeError), cairn.init() as failing:
        raise RuntimeError("boom")
    assert cairn.Api().run(failing.id).state == "failed"


def test_init_defaults_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAIRN_PROJECT", "from-env")
    monkeypatch.setenv("CAIRN_ENTITY", "acme")
    monkeypatch.setenv("CAIRN_RUN_GROUP", "grp")
    with cairn.init(job_type="eval", name="nice") as run:
        assert (run.project, run.entity, run.group, run.job_type, run.name) == (
            "from-env",
            "acme",
            "grp",
            "eval",
            "nice",
        )
    assert cairn.Api().default_project == "from-env"


def test_module_level_log_and_use() -> None:
    write("f.txt", "f")
    with pytest.raises(UsageError, match="init"):
        cairn.log_artifact("f.txt")
    cairn.init()
    art = cairn.log_artifact("f.txt", name="f", type="t")
    assert cairn.use_artifact("f:latest").id == art.id
    cairn.finish()


def test_api_queries() -> None:
    log("a", "dataset")
    log("b", "model")
    api = cairn.Api()
    assert [t.name for t in api.artifact_types()] == ["dataset", "model"]
    colls = api.artifact_collections("uncategorized", "dataset")
    assert [(c.name, c.type, c.version_count) for c in colls] == [("a", "dataset", 1)]
    assert api.artifact_collection("model", "b").name == "b"
    assert api.artifact_exists("a:v0") and not api.artifact_exists("a:v1")
    assert not api.artifact_exists("zzz")
    with pytest.raises(ValueError, match="type"):
        api.artifact("a:v0", type="model")
    assert [a.version for a in api.artifact_types()[0].collections()[0].artifacts()] == ["v0"]


def test_files_get_entry_and_manifest() -> None:
    art = log(files={"x/1.txt": "1", "x/2.txt": "22"})
    again = cairn.Api().artifact("ds:v0")
    assert [f.name for f in again.files()] == ["x/1.txt", "x/2.txt"]
    assert len(again.files()) == 2
    entry = again.get_entry("x/2.txt")
    assert entry.size == 2 and entry.digest == art.manifest.entries["x/2.txt"].digest
    with pytest.raises(KeyError):
        again.get_entry("nope")
    with pytest.warns(DeprecationWarning):
        again.get_path("x/1.txt")
    assert "x/1.txt" in again.manifest.entries and "x" not in again.manifest.entries
    assert [k for k, _ in again.manifest.entries.items()] == ["x/1.txt", "x/2.txt"]
    assert again.manifest.to_manifest_json()["contents"]["x/1.txt"]["size"] == 1


def test_tables_and_objects_round_trip() -> None:
    table = cairn.Table(columns=["id", "label"], data=[[1, "cat"], [2, "dog"]])
    table.add_data(3, "eel")
    art = cairn.Artifact("preds", "predictions")
    art.add(table, "predictions")
    art.add({"accuracy": 0.93}, "metrics")
    art["more"] = [1, 2, 3]
    with cairn.init() as run:
        run.log_artifact(art)
    got = cairn.Api().artifact("preds:latest")
    assert sorted(got.manifest.entries) == ["metrics.json", "more.json", "predictions.table.json"]
    back = got.get("predictions")
    assert isinstance(back, cairn.Table) and back == table and back.get_column("label")[2] == "eel"
    assert got["metrics"] == {"accuracy": 0.93}
    assert got.get("absent") is None
    with pytest.raises(ValueError, match="JSON"):
        cairn.Artifact("x", "t").add(object(), "bad")


def test_warnings_are_not_raised_for_fresh_versions() -> None:
    with warnings.catch_warnings():
        # UserWarning only: a ResourceWarning from some other test's garbage, collected now,
        # is not what this test is about.
        warnings.simplefilter("error", UserWarning)
        log()
