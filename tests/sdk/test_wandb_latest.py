"""``latest`` is an alias as in W&B: listed in ``aliases``, removable, counted by ``delete()``,
and ``:latest``, the CLI and the query API always agree on which version it is."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import cairn
from cairn.cli import cli
from cairn.errors import UsageError
from tests.conftest import write


def log(content: str, aliases: list[str] | None = None, name: str = "ds") -> cairn.Artifact:
    art = cairn.Artifact(name, "dataset")
    art.add_file(write("src/a.txt", content), name="a.txt")
    with cairn.init(project="p") as run:
        return run.log_artifact(art, aliases=aliases).wait()


def cli_latest(name: str = "ds") -> str:
    out = CliRunner().invoke(cli, ["artifact", "ls", "p", "--json"], catch_exceptions=False)
    assert out.exit_code == 0, out.stderr
    return next(c["latest_version"] for c in json.loads(out.stdout) if c["name"] == name)


def test_latest_is_listed_on_the_newest_version_only_never_vn() -> None:
    v0 = log("0", aliases=["best", "best", "latest"])  # de-duplicated; latest always added
    assert v0.aliases == ["latest", "best"]
    v1 = log("1")
    assert v1.aliases == ["latest"]
    api = cairn.Api(overrides={"project": "p"})
    assert api.artifact("ds:v0").aliases == ["best"]
    assert api.artifact("ds:latest").aliases == ["latest"]
    by_version = {a.version: a.aliases for a in api.artifact_versions("dataset", "ds")}
    assert by_version == {"v1": ["latest"], "v0": ["best"]}
    with cairn.init(project="p") as run:
        assert run.use_artifact("ds:latest").aliases == ["latest"]
    for a in api.artifacts("dataset", "ds"):
        assert not any(alias.startswith("v") and alias[1:].isdigit() for alias in a.aliases)
    with pytest.raises(ValueError, match="version"):
        v1.aliases = ["v7"]


def test_delete_refuses_latest_so_the_no_alias_recipe_keeps_the_newest() -> None:
    for i in range(4):
        log(str(i))
    api = cairn.Api(overrides={"project": "p"})
    newest = api.artifact("ds:latest")
    with pytest.raises(UsageError, match="latest"):
        newest.delete()
    # W&B's recipe: delete every version that has no alias.
    for version in api.artifact_versions("dataset", "ds"):
        if len(version.aliases) == 0:
            version.delete()
    assert [a.version for a in api.artifact_versions("dataset", "ds")] == ["v3"]
    newest.delete(delete_aliases=True)
    assert not api.artifact_exists("ds:latest")


def test_removing_latest_falls_back_to_the_newest_and_moving_it_is_honoured() -> None:
    log("0")
    v1 = log("1")
    assert v1.aliases == ["latest"]
    v1.aliases.remove("latest")
    v1.save()
    api = cairn.Api(overrides={"project": "p"})
    assert all("latest" not in a.aliases for a in api.artifact_versions("dataset", "ds"))
    assert api.artifact("ds:latest").version == "v1"  # the newest committed version
    assert api.artifact("ds").version == "v1" and cli_latest() == "v1"
    # Assigning latest to an old version: :latest, the CLI and the API agree.
    v0 = api.artifact("ds:v0")
    v0.aliases = [*v0.aliases, "latest"]
    v0.save()
    assert api.artifact("ds:latest").version == "v0"
    assert cli_latest() == "v0"
    with cairn.init(project="p") as run:
        assert run.use_artifact("ds").version == "v0"
    # A new version takes latest again.
    assert log("2").aliases == ["latest"]
    assert api.artifact("ds:v0").aliases == [] and cli_latest() == "v2"


def test_saving_other_fields_does_not_take_latest_back() -> None:
    v0 = log("0")
    stale = cairn.Api(overrides={"project": "p"}).artifact("ds:v0")
    assert stale.aliases == ["latest"]
    log("1")
    stale.description = "edited after v1 was logged"
    stale.save()
    api = cairn.Api(overrides={"project": "p"})
    assert api.artifact("ds:latest").version == "v1"
    assert api.artifact("ds:v0").description == "edited after v1 was logged"
    assert v0.version == "v0"


def test_alias_command_moves_latest_and_cli_agrees() -> None:
    log("0")
    log("1")
    out = CliRunner().invoke(cli, ["artifact", "alias", "add", "p/ds:v0", "latest"])
    assert out.exit_code == 0, out.stderr
    assert cairn.Api(overrides={"project": "p"}).artifact("ds:latest").version == "v0"
    assert cli_latest() == "v0"
    out = CliRunner().invoke(cli, ["artifact", "alias", "rm", "p/ds:v0", "latest"])
    assert out.exit_code == 0, out.stderr
    assert cairn.Api(overrides={"project": "p"}).artifact("ds:latest").version == "v1"
    assert cli_latest() == "v1"
