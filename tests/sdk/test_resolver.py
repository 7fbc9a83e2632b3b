"""One set of rules for the names people write (``Api`` and the CLI operations share it)."""

from __future__ import annotations

import pytest

from cairn.errors import ValidationError
from cairn.sdk import current_service
from cairn.sdk._resolver import NameResolver


def test_paths_take_what_they_leave_out_from_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAIRN_ENTITY", raising=False)
    monkeypatch.setenv("CAIRN_PROJECT", "from-env")
    service = current_service()
    names = NameResolver(entity="alice")
    assert names.project == "from-env" and names.entity == "alice"
    assert names.split("ds") == ("alice", "from-env", "ds", None)
    assert names.split("p/ds:v3") == ("alice", "p", "ds", "v3")
    assert names.split("bob/p/ds:best") == ("bob", "p", "ds", "best")
    assert names.project_path(None) == ("alice", "from-env")
    assert names.project_path("p") == ("alice", "p")
    assert names.project_path("bob/p") == ("bob", "p")
    assert names.run_path("r1") == ("alice", "from-env", "r1")
    assert names.run_path("p/r1") == ("alice", "p", "r1")
    assert names.run_path("bob/p/r1") == ("bob", "p", "r1")
    with pytest.raises(ValidationError, match="entity/project"):
        names.project_path("a/b/c")
    with pytest.raises(ValidationError, match="run_id"):
        names.run_path("a/b/c/d")
    assert NameResolver().entity == service.default_entity


def test_each_entry_point_reads_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The store's session is opened once, but each Api / CLI operation reads the settings anew
    (as W&B's Api does when it is made)."""
    monkeypatch.setenv("CAIRN_PROJECT", "first")
    assert NameResolver().project == "first"
    monkeypatch.setenv("CAIRN_PROJECT", "second")
    assert NameResolver().project == "second"
    assert NameResolver().session is NameResolver().session  # one session per store
