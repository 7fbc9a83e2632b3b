"""Projects and runs in the public API, and W&B's bulk-delete and cleanup recipes, unchanged."""

from __future__ import annotations

import pytest

import cairn
from cairn.errors import ArtifactNotFoundError, RunNotFoundError
from tests.conftest import write


def log_in(run: cairn.Run, name: str, content: str, type: str = "dataset", **kw: object) -> None:
    art = cairn.Artifact(name, type)
    art.add_file(write(f"src/{name}.txt", content), name=f"{name}.txt")
    run.log_artifact(art, **kw)  # type: ignore[arg-type]


def make_project() -> dict[str, str]:
    """Three runs in project p: prepare (data), two trainings (models), one failed."""
    ids = {}
    with cairn.init(project="p", job_type="prepare", group="g1", name="prep") as run:
        log_in(run, "data", "d0")
        ids["prep"] = run.id
    with cairn.init(project="p", job_type="train", group="g1", config={"lr": 0.1}) as run:
        run.use_artifact("data:latest")
        log_in(run, "model", "m0", type="model", aliases=["best"])
        ids["train1"] = run.id
    with cairn.init(project="p", job_type="train", group="g2", config={"lr": 0.01}) as run:
        log_in(run, "model", "m1", type="model")
        log_in(run, "model", "m2", type="model")  # v2: latest
        ids["train2"] = run.id
    with pytest.raises(RuntimeError), cairn.init(project="p", job_type="eval") as run:
        ids["failed"] = run.id
        raise RuntimeError("boom")
    return ids


def test_projects_and_their_collections_and_types() -> None:
    make_project()
    with cairn.init(project="q") as run:
        log_in(run, "other", "o")
    api = cairn.Api()
    projects = api.projects()
    assert sorted(p.name for p in projects) == ["p", "q"]
    project = api.project("p")
    assert project.path == [api.default_entity, "p"] and project in projects
    assert sorted(t.name for t in project.artifact_types()) == ["dataset", "model"]
    assert [t.name for t in project.artifacts_types()] == [t.name for t in project.artifact_types()]
    assert sorted(c.name for c in project.collections()) == ["data", "model"]
    assert [c.name for c in project.artifact_collections("model")] == ["model"]
    assert project.sweeps() == []
    assert api.project(f"{api.default_entity}/q").collections()[0].name == "other"


def test_runs_with_filters_and_order() -> None:
    ids = make_project()
    api = cairn.Api()
    runs = api.runs("p")
    assert [r.id for r in runs] == [ids["prep"], ids["train1"], ids["train2"], ids["failed"]]
    assert len(runs) == 4 and runs[0].id == ids["prep"]
    newest_first = api.runs(f"{api.default_entity}/p", order="-created_at")
    assert [r.id for r in newest_first] == [r.id for r in reversed(runs)]
    assert {r.id for r in api.runs("p", {"jobType": "train"})} == {ids["train1"], ids["train2"]}
    assert [r.id for r in api.runs("p", {"group": "g2"})] == [ids["train2"]]
    assert [r.id for r in api.runs("p", {"state": "failed"})] == [ids["failed"]]
    assert [r.id for r in api.runs("p", {"displayName": "prep"})] == [ids["prep"]]
    assert [r.id for r in api.runs("p", {"config.lr": {"$lt": 0.05}})] == [ids["train2"]]
    both = {"$or": [{"jobType": "prepare"}, {"state": "failed"}]}
    assert {r.id for r in api.runs("p", both)} == {ids["prep"], ids["failed"]}
    assert len(api.runs("p", {"createdAt": {"$gte": "2000-01-01T00:00:00"}})) == 4
    assert len(api.runs("p", {"created_at": {"$lt": "2000-01-01T00:00:00"}})) == 0
    with pytest.raises(ValueError, match="filter"):
        api.runs("p", {"colour": "red"})
    run = api.run(f"p/{ids['train1']}")
    assert (run.job_type, run.group, run.state, run.config) == (
        "train",
        "g1",
        "finished",
        {"lr": 0.1},
    )
    assert [a.version for a in run.logged_artifacts()] == ["v0"]
    assert [a.name for a in run.used_artifacts()] == ["data:v0"]


def test_w_and_b_bulk_delete_recipe_by_run() -> None:
    make_project()
    api = cairn.Api()
    # W&B's recipe: delete every model a project's runs logged.
    for run in api.runs(f"{api.default_entity}/p"):
        for artifact in run.logged_artifacts():
            if artifact.type == "model":
                artifact.delete(delete_aliases=True)
    assert not api.artifact_exists("p/model")
    assert api.artifact("p/data:latest").version == "v0"


def test_w_and_b_cleanup_recipe_keeps_versions_with_aliases() -> None:
    make_project()
    api = cairn.Api()
    # W&B's storage clean-up recipe: every version without an alias, in every collection.
    project = api.project("p")
    for artifact_type in project.artifacts_types():
        for artifact_collection in artifact_type.collections():
            for version in artifact_collection.versions():
                if len(version.aliases) == 0:
                    version.delete()
    kept = {a.version: a.aliases for a in api.artifact_versions("model", "p/model")}
    assert kept == {"v2": ["latest"], "v0": ["best"]}


def test_run_delete_with_and_without_artifacts() -> None:
    ids = make_project()
    api = cairn.Api()
    api.run(f"p/{ids['prep']}").delete()
    with pytest.raises(RunNotFoundError):
        api.run(f"p/{ids['prep']}")
    data = api.artifact("p/data:v0")  # kept, with no logging run
    assert data.logged_by() is None
    assert [r.id for r in data.used_by()] == [ids["train1"]]
    for run in api.runs("p", {"state": "finished", "group": "g2"}):
        run.delete(delete_artifacts=True)
    assert [a.version for a in api.artifact_versions("model", "p/model")] == ["v0"]
    assert api.artifact("p/model:latest").version == "v0"  # latest moved back
    with pytest.raises(ArtifactNotFoundError):
        api.artifact("p/model:v2")
    assert len(api.runs("p")) == 2
