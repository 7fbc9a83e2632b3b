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
