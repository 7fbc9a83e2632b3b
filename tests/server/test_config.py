"""A server's configuration is built from one read of the environment, made by its entry point
(``cairn server``, ``cairn gc --db/--store``, a uvicorn worker) and passed down: no module of the
server reads the environment itself."""

from __future__ import annotations

import pathlib

import pytest

from cairn.errors import UsageError
from cairn.server import ServerConfig

SERVER = pathlib.Path(__file__).resolve().parents[2] / "src" / "cairn" / "server"


def test_every_setting_comes_from_the_mapping_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAIRN_SERVER_SECRET", "from the process environment")
    monkeypatch.setenv("CAIRN_SERVER_INSECURE_COOKIES", "true")
    env = {
        "CAIRN_SERVER_DB": "catalog.sqlite",
        "CAIRN_SERVER_STORE": "blobs",
        "CAIRN_ADMIN_KEY": "k" * 40,
        "CAIRN_SERVER_PART_SIZE": str(8 << 20),
        "CAIRN_SERVER_UPLOAD_MAX_AGE": "60",
        "CAIRN_SERVER_GC_INTERVAL": "0",
        "CAIRN_SERVER_GC_GRACE": "5",
        "CAIRN_SERVER_SWEEP_INTERVAL": "7.5",
    }
    config = ServerConfig.from_env(env)
    assert (config.db, config.store, config.admin_key) == ("catalog.sqlite", "blobs", "k" * 40)
    assert (config.part_size, config.upload_max_age) == (8 << 20, 60.0)
    assert (config.gc_interval, config.gc_grace, config.sweep_interval) == (0.0, 5.0, 7.5)
    # Not in the mapping: not read from the process's environment either.
    assert config.secret is None and config.insecure_cookies is False
    options = ServerConfig.from_env(env, db="other.sqlite", store="s3://b/p")
    assert (options.db, options.store) == ("other.sqlite", "s3://b/p")  # options win


@pytest.mark.parametrize(("text", "insecure"), [("on", True), ("YES", True), ("off", False)])
def test_the_ui_settings_follow_the_one_yes_no_rule(text: str, insecure: bool) -> None:
    env = {"CAIRN_SERVER_INSECURE_COOKIES": text, "CAIRN_SERVER_SECRET": "s"}
    config = ServerConfig.from_env(env, db="d", store="s")
    assert config.insecure_cookies is insecure and config.secret == "s"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "needs --db"),
        ({"CAIRN_SERVER_PART_SIZE": str(1 << 20)}, "CAIRN_SERVER_PART_SIZE"),
        ({"CAIRN_SERVER_UPLOAD_MAX_AGE": "soon"}, "CAIRN_SERVER_UPLOAD_MAX_AGE"),
        ({"CAIRN_SERVER_GC_GRACE": "-1"}, "CAIRN_SERVER_GC_GRACE"),
    ],
)
def test_bad_settings_are_refused(env: dict[str, str], message: str) -> None:
    where = {} if message == "needs --db" else {"db": "d", "store": "s"}
    with pytest.raises(UsageError, match=message):
        ServerConfig.from_env(env, **where)


def test_only_the_worker_entry_point_reads_the_environment() -> None:
    """``_serve.app_from_env`` is a uvicorn worker's entry point (and ``serve`` hands the
    options to the workers through the environment); no other server module reads it."""
    readers = sorted(
        path.name
        for path in SERVER.glob("*.py")
        if "os.environ" in (text := path.read_text()) or "getenv" in text
    )
    assert readers == ["_serve.py"]
