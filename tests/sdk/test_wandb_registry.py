"""Registry links (W&B's ``link_artifact``, ``Artifact.link/unlink``) and registries."""

from __future__ import annotations

import pathlib

import pytest

import cairn
from cairn.errors import ArtifactNotFoundError, UsageError
from tests.conftest import write


def log_model(content: str, aliases: list[str] | None = None) -> cairn.Artifact:
    art = cairn.Artifact("churn-model", "model", metadata={"auc": 0.9})
    art.add_file(write("out/model.pkl", content), name="model.pkl")
    with cairn.init(project="train") as run:
        return run.log_artifact(art, aliases=aliases)


def test_promote_to_a_registry_and_consume_from_it() -> None:
    # W&B's recipe: log, link to the model registry with an alias, use it from elsewhere.
    with cairn.init(project="train") as run:
        art = cairn.Artifact("churn-model", "model")
        art.add_file(write("out/model.pkl", "weights-0"), name="model.pkl")
        run.log_artifact(art)
        linked = run.link_artifact(art, "wandb-registry-model/churn", aliases=["production"])
    assert linked.is_link and linked.name == "churn:v0"
    assert linked.aliases == ["latest", "production"] and linked.digest == art.digest
    assert (linked.source_name, linked.source_project, linked.source_version) == (
        "churn-model:v0",
        "train",
        "v0",
    )
    assert linked.source_collection.name == "churn-model"
    assert linked.collection.name == "churn" and linked.collection.project == "wandb-registry-model"
    with cairn.init(project="serve") as run:
        used = run.use_artifact("wandb-registry-model/churn:production")
        path = used.download()
        assert (pathlib.Path(path) / "model.pkl").read_text() == "weights-0"
        assert used.source_qualified_name.endswith("/train/churn-model:v0")
    api = cairn.Api()
    assert api.artifact("wandb-registry-model/churn:production").id == linked.id
    assert api.artifact("my-org/wandb-registry-model/churn:latest").id == linked.id  # org paths
    assert [a.name for a in art.linked_artifacts] == ["churn:v0"]

    # A new version: the registry numbers it on its own; linking again only adds aliases.
    v1 = log_model("weights-1")
    assert v1.version == "v1"
    v1.link("wandb-registry-model/churn", aliases=["staging"])
    assert api.artifact("wandb-registry-model/churn:latest").source_version == "v1"
    again = v1.link("wandb-registry-model/churn", aliases=["candidate"])
    assert again.version == "v1" and again.aliases == ["latest", "candidate", "staging"]
    assert api.artifact("wandb-registry-model/churn:production").source_version == "v0"
    registry = api.registry("model")
    assert registry.full_name == "wandb-registry-model"
    assert [c.name for c in registry.collections()] == ["churn"]
    assert [a.version for a in registry.versions()] == ["v1", "v0"]
    assert api.artifact("train/churn-model:v1").aliases == ["latest"]


def test_unlink_and_collection_delete_refused_while_linked() -> None:
    v0 = log_model("w")
    link = v0.link("wandb-registry-model/churn", aliases=["production"])
    with pytest.raises(UsageError, match="unlink"):
        v0.collection.delete()
    with pytest.raises(UsageError, match="not a link"):
        v0.unlink()
    link.unlink()
    api = cairn.Api()
    assert not api.artifact_exists("wandb-registry-model/churn:production")
    assert api.artifact("train/churn-model:v0").id == v0.id  # the source stays
    v0.collection.delete()  # nothing links to it any more
    assert not api.artifact_exists("train/churn-model")


def test_registries_are_listed_created_and_checked() -> None:
    api = cairn.Api()
    assert {"model", "dataset"} <= {r.name for r in api.registries()}
    evals = api.create_registry("evals", description="eval sets", artifact_types=["evaluation"])
    assert (evals.name, evals.full_name, evals.artifact_types) == (
        "evals",
        "wandb-registry-evals",
        ["evaluation"],
    )
    assert api.registry("evals").description == "eval sets"
    assert [r.name for r in api.registries(filter={"name": "evals"})] == ["evals"]
    with pytest.raises(ValueError, match="already exists"):
        api.create_registry("evals")
    model = log_model("w")
    with pytest.raises(ValueError, match="evaluation"):
        model.link("wandb-registry-evals/churn")
    with pytest.raises(ArtifactNotFoundError, match="create_registry"):
        model.link("wandb-registry-nope/churn")
    with pytest.raises(ArtifactNotFoundError):
        api.registry("nope")
    with pytest.raises(ValueError, match="version"):
        model.link("wandb-registry-model/churn:v0")
    # A link into an ordinary project collection works the same way.
    other = model.link("shared/models", aliases=["picked"])
    assert other.name == "models:v0" and other.project == "shared" and other.is_link
    assert not model.is_link and model.source_name == model.name


def test_cli_links_and_lists_registries_and_the_ui_shows_links() -> None:
    import json

    from click.testing import CliRunner

    from cairn.cli import cli

    log_model("w")
    runner = CliRunner()
    out = runner.invoke(
        cli,
        ["artifact", "link", "train/churn-model:v0", "wandb-registry-model/churn", "-a", "prod"],
    )
    assert out.exit_code == 0, out.stderr
    assert "registry/wandb-registry-model/churn:v0" in out.stdout
    out = runner.invoke(cli, ["artifact", "registries", "--json"])
    assert {"model", "dataset"} <= {r["name"] for r in json.loads(out.stdout)}
    out = runner.invoke(
        cli, ["artifact", "versions", "registry/wandb-registry-model/churn", "--json"]
    )
    (row,) = json.loads(out.stdout)
    source = cairn.Api().artifact("train/churn-model:v0")
    assert row["aliases"] == ["latest", "prod"] and row["source_version_id"] == source.id
