"""The README's command-line block runs as written (in process, on the test's own store)."""

from __future__ import annotations

import pathlib
import re
import shlex

from click.testing import CliRunner

from cairn.cli import cli
from tests.conftest import write

ROOT = pathlib.Path(__file__).resolve().parents[2]


def readme_commands() -> list[list[str]]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Command line", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, "README's Command line section has no sh block"
    lines = [line.split("  #", 1)[0].strip() for line in block.group(1).splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith("cairn ")]


def test_readme_command_line_block_runs() -> None:
    for name in ("a.png", "b.png", "c.png"):
        write(f"data/images/{name}", name)
    for name in ("a.png", "b.png", "d.png"):
        write(f"data/images-v2/{name}", name + " v2")
    runner = CliRunner()
    commands = readme_commands()
    assert len(commands) >= 10
    for args in commands:
        result = runner.invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, f"cairn {' '.join(args)}: {result.output}"
    assert pathlib.Path("images", "d.png").read_text() == "d.png v2"
