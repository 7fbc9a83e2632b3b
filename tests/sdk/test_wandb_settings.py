"""W&B's settings: ``WANDB_*`` variables as fallbacks, modes, ``login`` and ``Settings``; W&B's
credentials are never read."""

from __future__ import annotations

import os
import pathlib
import uuid
from typing import Any

import pytest

import cairn
from cairn.errors import AuthenticationError
from cairn.sdk import Settings as StoreSettings
from tests.conftest import write


def test_wandb_variables_are_honoured_when_cairn_ones_are_unset(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    for var, value in {
        "WANDB_PROJECT": "wproj",
        "WANDB_ENTITY": "wteam",
        "WANDB_RUN_GROUP": "wgroup",
        "WANDB_JOB_TYPE": "wjob",
        "WANDB_NAME": "wname",
        "WANDB_RUN_ID": "wid123",
        "WANDB_ARTIFACT_DIR": str(tmp_path / "w-artifacts"),
        "WANDB_SILENT": "true",
    }.items():
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("CAIRN_ARTIFACT_DIR")
    with cairn.init() as run:
        assert (run.project, run.entity, run.group, run.job_type) == (
            "wproj",
            "wteam",
            "wgroup",
            "wjob",
        )
        assert (run.name, run.id) == ("wname", "wid123")
        art = cairn.Artifact("ds", "dataset")
        art.add_file(write("a.txt", "a"))
        run.log_artifact(art)
    assert StoreSettings.from_env().silent
    got = cairn.Api().artifact("wteam/wproj/ds:latest")
    assert got.download() == str(tmp_path / "w-artifacts" / "ds:v0")
    # The CAIRN_* variable wins over W&B's.
    monkeypatch.setenv("CAIRN_PROJECT", "cproj")
    monkeypatch.setenv("CAIRN_RUN_ID", "cid456")
    with cairn.init() as run:
        assert (run.project, run.id) == ("cproj", "cid456")


def test_wandb_cache_data_and_run_dirs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    monkeypatch.delenv("CAIRN_CACHE_DIR")
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "w-cache"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "w-data"))
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "w-dir"))
    assert StoreSettings.from_env().cache_dir == str(tmp_path / "w-cache")
    with cairn.init(project="p") as run:
        files = pathlib.Path(run.dir)
        assert files.is_dir() and files.name == "files"
        assert files.parent.name.endswith(f"-{run.id}")
        assert files.is_relative_to(tmp_path / "w-dir")
        art = cairn.Artifact("made", "dataset")
        with art.new_file("notes.txt") as f:
            f.write("staged")
        staged = art.manifest.entries["notes.txt"].local_path
        assert staged is not None
        assert pathlib.Path(staged).is_relative_to(tmp_path / "w-data" / "artifacts" / "staging")
        art.add_file(write("b.txt", "b"))  # the stat cache lives in the cache directory
        run.log_artifact(art)
    assert (tmp_path / "w-cache" / "stat-cache.sqlite").exists()
    # Neither W&B directory holds the store.
    store_files = {p.name for p in (tmp_path / "w-dir").rglob("*")}
    assert "catalog.sqlite" not in store_files
    with cairn.init(project="p", dir=str(tmp_path / "explicit")) as run:
        assert pathlib.Path(run.dir).is_relative_to(tmp_path / "explicit")


def test_disabled_mode_is_a_no_op_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    with cairn.init(project="p", config={"lr": 0.1}) as run:
        assert run.disabled and cairn.run is run
        run.config.epochs = 3
        assert run.config == {"lr": 0.1, "epochs": 3}
        art = cairn.Artifact("ds", "dataset")
        art.add_file(write("a.txt", "a"))
        assert run.log_artifact(art) is art and art.is_draft()
        used = run.use_artifact("other:latest")
        assert used.is_draft() and used.name == "other"
        assert run.logged_artifacts() == []
    assert cairn.run is None
    monkeypatch.delenv("WANDB_MODE")
    with cairn.init(project="p", mode="disabled") as run:
        assert run.disabled
        run.log_artifact(art)
    with cairn.init(project="p", settings=cairn.Settings(mode="disabled")) as run:
        assert run.disabled
    with pytest.raises(ValueError, match="mode"):
        cairn.init(mode="sometimes")
    # Nothing reached the store.
    assert cairn.Api().projects() == []
    with cairn.init(project="p", mode="online") as run:
        assert not run.disabled


def test_wandb_credentials_are_never_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".netrc").write_text("machine 127.0.0.1 login user password bad-password\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NETRC", str(home / ".netrc"))
    monkeypatch.setenv("WANDB_API_KEY", "wandb-cloud-key-" + "0" * 24)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    expected = os.environ.get("CAIRN_BASE_URL")
    with cairn.init(project="p") as run:
        art = cairn.Artifact("ds", "dataset")
        art.add_file(write("a.txt", "a"))
        run.log_artifact(art)
    assert cairn.Api().artifact("p/ds:v0").version == "v0"
    assert StoreSettings.from_env().base_url == expected  # the server, or none: the embedded store


def test_login_and_settings_map_to_cairn_variables(
    backend: str, monkeypatch: pytest.MonkeyPatch, cairn_env: pathlib.Path
) -> None:
    assert cairn.login() is True
    if backend == "embedded":
        assert "CAIRN_BASE_URL" not in os.environ
        with pytest.raises(ValueError, match="URL"):
            cairn.login(host="cairn.internal")
        return
    url, key = os.environ["CAIRN_BASE_URL"], os.environ["CAIRN_API_KEY"]
    monkeypatch.delenv("CAIRN_BASE_URL")
    monkeypatch.delenv("CAIRN_API_KEY")
    # init(settings=...) points one run at the server.
    settings = cairn.Settings(base_url=url, api_key=key, project="sp", console="off")
    assert "***" in repr(settings) and key not in repr(settings)
    with cairn.init(settings=settings) as run:
        assert run.project == "sp"
        art = cairn.Artifact("from-settings", "dataset")
        art.add_file(write("a.txt", "a"))
        run.log_artifact(art)
    assert not (cairn_env / "store").exists()  # not the embedded store
    # login(key, host) sets CAIRN_API_KEY / CAIRN_BASE_URL for the process.
    bad: dict[str, Any] = {"key": "cairn_" + uuid.uuid4().hex, "host": url, "verify": True}
    with pytest.raises(AuthenticationError):
        cairn.login(**bad)
    assert cairn.login(key=key, host=url, verify=True) is True
    assert os.environ["CAIRN_BASE_URL"] == url and os.environ["CAIRN_API_KEY"] == key
    assert cairn.Api().artifact("sp/from-settings:v0").version == "v0"
    assert not (cairn_env / "store").exists()


def test_w_and_b_s3_endpoint_variable_is_used_for_references(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    for var, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_S3_ENDPOINT_URL", s3.endpoint)
    client = boto3.client("s3", endpoint_url=s3.endpoint)
    name = f"cairn-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    client.put_object(Bucket=name, Key="data/x.txt", Body=b"x")
    art = cairn.Artifact("s3ref", "dataset")
    (entry,) = art.add_reference(f"s3://{name}/data/x.txt")
    assert entry.size == 1
    with cairn.init(project="p") as run:
        run.log_artifact(art)
    path = cairn.Api().artifact("p/s3ref:v0").download()
    assert pathlib.Path(path, "x.txt").read_bytes() == b"x"


def test_offline_mode_logs_to_the_embedded_store(backend: str, cairn_env: pathlib.Path) -> None:
    from cairn.service import LocalService

    with cairn.init(project="p", mode="offline") as run:
        assert run.offline
        art = cairn.Artifact("ds", "dataset")
        art.add_file(write("a.txt", "a"))
        run.log_artifact(art)
    local = LocalService.open(str(cairn_env / "store"))
    try:
        assert local.resolve(local.default_entity, "p", "ds", None).version == "v0"
    finally:
        local.close()
    # With a server configured, the server did not get it (cairn sync moves it later).
    assert cairn.Api().artifact_exists("p/ds") == (backend == "embedded")


def test_one_settings_class_for_wandb_and_cairn(monkeypatch: pytest.MonkeyPatch) -> None:
    """W&B's Settings and cairn's configuration are one class: what a Settings object sets (in
    W&B's names) goes over the environment's values (cairn's names)."""
    assert cairn.Settings is StoreSettings
    monkeypatch.setenv("CAIRN_JOB_TYPE", "from-env")
    env = StoreSettings.from_env()
    given = cairn.Settings(run_job_type="train", root_dir="/runs", mode="dryrun", console="off")
    assert (given.job_type, given.run_dir, given.project, given.console) == (
        "train",
        "/runs",
        None,
        "off",
    )
    merged = given.apply(env)
    assert (merged.job_type, merged.run_dir, merged.mode) == ("train", "/runs", "offline")
    assert (merged.dir, merged.cache_dir) == (env.dir, env.cache_dir)
    assert env.job_type == "from-env" and env.mode == "online"  # env is left as it was
    assert merged.replace(base_url=None).base_url is None
    with pytest.raises(AttributeError):
        _ = given.no_such_setting
