"""Running ``cairn``: the installed console script in a subprocess, as a user would, or the same
click command in process (``run``), which is several times faster for the many follow-up checks.

Every command is run at least once through the console script; the rest of a test may use
``run``, which goes through the same parsing, error handling and exit statuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest
from click.testing import CliRunner

from cairn.cli import cli

CAIRN = os.path.join(os.path.dirname(sys.executable), "cairn")


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def cairn_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Result:
    """Run ``cairn ARGS`` with this test's environment (its store, cache and directory)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run(
        [CAIRN, *args], capture_output=True, text=True, timeout=timeout, env=full_env
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def ok(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run ``cairn ARGS`` (the console script) and insist it succeeds."""
    result = cairn_cli(*args, env=env)
    assert result.code == 0, f"cairn {' '.join(args)} exited {result.code}: {result.err}"
    return result


def run(*args: str) -> Result:
    """Run ``cairn ARGS`` in this process (same environment, same store)."""
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return Result(result.exit_code, result.stdout, result.stderr)


def run_ok(*args: str) -> Result:
    result = run(*args)
    assert result.code == 0, f"cairn {' '.join(args)} exited {result.code}: {result.err}"
    return result


@pytest.fixture(autouse=True)
def _console_script_installed() -> None:
    assert os.path.exists(CAIRN), f"the console script is not installed at {CAIRN}"
