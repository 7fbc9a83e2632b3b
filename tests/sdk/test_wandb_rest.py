"""The rest of W&B's surface: metadata rules, pathlib entry names, get_added_local_path_name,
init(id, resume), warnings at the user's line."""

from __future__ import annotations

import math
import pathlib
import warnings

import pytest

import cairn
from cairn.errors import UsageError
from tests.conftest import write


def test_metadata_rules_as_in_w_and_b() -> None:
    with pytest.raises(TypeError):
        cairn.Artifact("ds", "dataset", metadata=["not", "a", "mapping"])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        cairn.Artifact("ds", "dataset", metadata={"f": object()})
    with pytest.raises(ValueError, match="infinite"):
        cairn.Artifact("ds", "dataset", metadata={"x": math.inf})
    with pytest.raises(ValueError, match="100"):
        cairn.Artifact("ds", "dataset", metadata={f"k{i}": i for i in range(101)})
    art = cairn.Artifact(
        "ds", "dataset", metadata={"loss": math.nan, "nested": {"v": [1, math.nan]}}
    )
    assert art.metadata == {"loss": None, "nested": {"v": [1, None]}}
    art.add_file(write("a.txt", "a"))
    with cairn.init(project="p") as run:
        run.log_artifact(art)
    back = cairn.Api().artifact("p/ds:v0")
    assert back.metadata == {"loss": None, "nested": {"v": [1, None]}}
    with pytest.raises(TypeError):
        back.metadata = "text"  # type: ignore[assignment]


def test_entry_names_as_paths_and_added_local_paths() -> None:
    src = pathlib.Path(write("data/x.csv", "x"))
    art = cairn.Artifact("ds", "dataset")
    art.add_file(src, name=pathlib.PureWindowsPath("tables\\x.csv"))  # type: ignore[arg-type]
    art.add_file(write("data/y.csv", "y"), name=pathlib.PurePosixPath("tables/y.csv"))  # type: ignore[arg-type]
    art.add_dir("data", name=pathlib.Path("raw"))  # type: ignore[arg-type]
    assert sorted(art.manifest.entries) == [
        "raw/x.csv",
        "raw/y.csv",
        "tables/x.csv",
        "tables/y.csv",
    ]
    assert art.get_added_local_path_name(str(src.resolve())) in ("tables/x.csv", "raw/x.csv")
    assert art.get_added_local_path_name("data/y.csv") in ("tables/y.csv", "raw/y.csv")
    assert art.get_added_local_path_name("nowhere.txt") is None
    with cairn.init(project="p") as run:
        run.log_artifact(art)
    assert (
        cairn.Api().artifact("p/ds:v0").get_entry(pathlib.PurePosixPath("tables/x.csv")).size == 1
    )  # type: ignore[arg-type]


def test_init_resume_follows_w_and_b() -> None:
    with cairn.init(project="p", id="run-1", config={"lr": 0.1, "epochs": 3}) as run:
        assert run.config == {"lr": 0.1, "epochs": 3}
    with pytest.raises(UsageError, match="never"):
        cairn.init(project="p", id="run-1", resume="never")
    with pytest.raises(UsageError, match="must"):
        cairn.init(project="p", id="run-2", resume="must")
    with pytest.raises(UsageError, match="id"):
        cairn.init(project="p", resume="must")
    with pytest.raises(ValueError, match="resume"):
        cairn.init(project="p", id="run-1", resume="sometimes")
    with cairn.init(project="p", id="run-1", resume="must", config={"epochs": 5}) as run:
        assert run.config == {"lr": 0.1, "epochs": 5}  # merged, not dropped
    assert cairn.Api().run("p/run-1").config == {"lr": 0.1, "epochs": 5}
    with cairn.init(project="p", id="run-3", resume="allow") as run:
        assert run.id == "run-3"
    with cairn.init(project="p", id="run-3", resume="allow", config={"b": 1}) as run:
        assert run.config == {"b": 1}


def test_identical_content_warning_points_at_the_users_line() -> None:
    def log() -> None:
        art = cairn.Artifact("ds", "dataset")
        art.add_file(write("a.txt", "same"))
        with cairn.init(project="p") as run:
            run.log_artifact(art)

    log()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        art = cairn.Artifact("ds", "dataset")
        art.add_file(write("a.txt", "same"))
        with cairn.init(project="p") as run:
            run.log_artifact(art)  # the line the warning must name
    (warning,) = [w for w in caught if "identical" in str(w.message)]
    assert warning.filename == __file__
    with open(__file__) as f:
        assert "run.log_artifact(art)  # the line" in f.readlines()[warning.lineno - 1]


def test_references_cairn_cannot_fetch_are_kept_by_uri() -> None:
    art = cairn.Artifact("refs", "dataset")
    (gs,) = art.add_reference("gs://bucket/path/model.bin")
    assert (gs.path, gs.digest, gs.size, gs.ref) == (
        "model.bin",
        "gs://bucket/path/model.bin",
        None,
        "gs://bucket/path/model.bin",
    )
    art.add_file(write("a.txt", "a"))
    with cairn.init(project="p") as run:
        run.log_artifact(art)
    root = pathlib.Path(cairn.Api().artifact("p/refs:v0").download())
    assert (root / "a.txt").read_text() == "a" and not (root / "model.bin").exists()
    with pytest.raises(ValueError, match="scheme"):
        cairn.Artifact("x", "dataset").add_reference("no-scheme-here")


def test_artifact_references_resolve_on_download_and_survive_the_first() -> None:
    first = cairn.Artifact("first", "dataset")
    first.add_file(write("src/table.json", '{"rows": 3}'), name="table.json")
    with cairn.init(project="p") as run:
        run.log_artifact(first)
    second = cairn.Artifact("second", "dataset")
    second.add_reference(first.get_entry("table.json"), name="copied/table.json")
    second.add_reference(f"wandb-artifact://{first.id}/table.json", name="again.json")
    second.add_reference(first.get_entry("table.json").ref_url(), name="third.json")
    with pytest.raises(ValueError, match="missing"):
        second.add_reference(f"cairn-artifact://{first.id}/missing.json")
    with cairn.init(project="p") as run:
        run.log_artifact(second)
    first.delete(delete_aliases=True)  # the second keeps the content alive
    root = pathlib.Path(cairn.Api().artifact("p/second:v0").download())
    for name in ("copied/table.json", "again.json", "third.json"):
        assert (root / name).read_text() == '{"rows": 3}'


def test_incremental_artifacts_build_on_the_latest_version() -> None:
    base = cairn.Artifact("inc", "dataset")
    base.add_file(write("a.txt", "a"))
    with cairn.init(project="p") as run:
        run.log_artifact(base)
    for name in ("b.txt", "c.txt"):
        inc = cairn.Artifact("inc", "dataset", incremental=True)
        inc.add_file(write(name, name))
        with cairn.init(project="p") as run:
            run.log_artifact(inc)
    latest = cairn.Api().artifact("p/inc:latest")
    assert latest.version == "v2" and sorted(latest.manifest.entries) == ["a.txt", "b.txt", "c.txt"]
    fresh = cairn.Artifact("new-inc", "dataset", incremental=True)  # nothing to build on yet
    fresh.add_file(write("z.txt", "z"))
    with cairn.init(project="p") as run:
        run.log_artifact(fresh)
    assert sorted(fresh.manifest.entries) == ["z.txt"]


def test_paginated_artifacts_with_order_and_cursor() -> None:
    for i in range(4):
        art = cairn.Artifact("pages", "dataset")
        art.add_file(write("a.txt", str(i)))
        with cairn.init(project="p") as run:
            run.log_artifact(art)
    api = cairn.Api(overrides={"project": "p"})
    found = api.artifacts("dataset", "pages", per_page=2)
    assert len(found) == 4 and found[0].version == "v3" and found.cursor == "v0"
    assert [a.version for a in found[1:3]] == ["v2", "v1"]
    oldest_first = api.artifact_versions("dataset", "pages", order="+version")
    assert [a.version for a in oldest_first] == ["v0", "v1", "v2", "v3"]
    cursor = oldest_first.cursor
    art = cairn.Artifact("pages", "dataset")
    art.add_file(write("a.txt", "new"))
    with cairn.init(project="p") as run:
        run.log_artifact(art)
    since = api.artifacts("dataset", "pages", order="+version", start=cursor)
    assert [a.version for a in since] == ["v4"]
    assert api.artifacts("dataset", "pages", start="v2").cursor == "v0"
    with pytest.raises(ValueError):
        api.artifacts("dataset", "pages", start="page-two")
    with pytest.raises(ValueError):
        api.artifacts("dataset", "pages", order="size")


def test_unchecksummed_directory_references_list_their_files(tmp_path: pathlib.Path) -> None:
    data = tmp_path / "shared"
    write(data / "a.csv", "1")
    write(data / "sub" / "b.csv", "2")
    art = cairn.Artifact("dirref", "dataset")
    entries = art.add_reference(f"file://{data}", name="d", checksum=False)
    assert sorted(e.path for e in entries) == ["d/a.csv", "d/sub/b.csv"]
    assert all(e.digest == e.ref and e.size is None for e in entries)
    with cairn.init(project="p") as run:
        run.log_artifact(art)
    write(data / "a.csv", "changed")  # no checksum: whatever is there now is fetched
    root = pathlib.Path(cairn.Api().artifact("p/dirref:v0").download())
    assert (root / "d" / "a.csv").read_text() == "changed"
    assert (root / "d" / "sub" / "b.csv").read_text() == "2"


def test_joined_and_partitioned_tables_round_trip() -> None:
    from cairn.data_types import PartitionedTable

    users = cairn.Table(columns=["id", "name"], data=[[1, "ann"], [2, "bob"], [3, "cy"]])
    scores = cairn.Table(columns=["id", "score"], data=[[1, 0.5], [3, 0.9], [4, 0.1]])
    art = cairn.Artifact("tables", "dataset")
    art.add(cairn.JoinedTable(users, scores, "id"), "joined")
    for i in range(3):
        art.add(cairn.Table(columns=["x"], data=[[i], [i * 10]]), f"parts/part-{i}")
    art.add(PartitionedTable("parts"), "all")
    with cairn.init(project="p") as run:
        run.log_artifact(art)
    back = cairn.Api().artifact("p/tables:v0")
    joined = back.get("joined")
    assert isinstance(joined, cairn.JoinedTable) and joined.join_key == "id"
    assert joined.table1 == users and joined.table2 == scores
    assert joined.joined().data == [[1, "ann", 0.5], [3, "cy", 0.9]]
    parts = back.get("all")
    assert isinstance(parts, PartitionedTable) and len(parts.parts) == 3
    assert parts.columns == ["x"] and list(parts) == [[0], [0], [1], [10], [2], [20]]
    with pytest.raises(TypeError):
        cairn.JoinedTable(users, 5, "id")  # type: ignore[arg-type]
