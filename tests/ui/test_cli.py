"""``cairn ui``: its options, and a clear message when the UI's packages are missing."""

from __future__ import annotations

import sys

import pytest
from click.testing import CliRunner

from cairn.cli import cli
from cairn.ui._serve import is_loopback


def test_ui_without_its_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cairn.ui", None)  # as if fastapi could not be imported
    result = CliRunner().invoke(cli, ["ui", "--port", "0"])
    assert result.exit_code == 1
    assert "pip install 'cairn-artifacts[ui]'" in result.output


def test_ui_options() -> None:
    result = CliRunner().invoke(cli, ["ui", "--help"])
    assert result.exit_code == 0
    assert "--host" in result.output and "127.0.0.1" in result.output and "8080" in result.output
    assert CliRunner().invoke(cli, ["ui", "--port", "70000"]).exit_code == 2


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("127.0.0.2", True),
        ("0.0.0.0", False),
        ("192.168.1.4", False),
        ("example.org", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_every_page_is_documented() -> None:
    """Each kind of address the UI answers appears in docs/design.md's page table."""
    import pathlib
    import re

    from cairn.ui.views import auth, collections, diff, lineage, projects, runs, versions

    design = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "design.md").read_text()
    table = design[design.index("## Web UI") :]
    words = {"static"}
    for module in (auth, projects, collections, versions, diff, lineage, runs):
        for route in module.router.routes:
            path = getattr(route, "path", "")
            words |= {w for w in re.findall(r"(?<=/)[a-z-]+(?=/|$)", path) if w != "-"}
    assert words >= {"artifacts", "files", "file", "raw", "diff", "lineage", "runs", "login"}
    for word in words:
        assert f"/{word}" in table, f"docs/design.md does not list the {word!r} pages"
