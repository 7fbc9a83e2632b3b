"""Progress bars: drawn on a real pseudo-terminal, absent in pipes and with CAIRN_SILENT=true."""

from __future__ import annotations

import fcntl
import os
import pathlib
import pty
import re
import struct
import subprocess
import termios

from tests.cli.conftest import CAIRN, cairn_cli
from tests.conftest import write

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


def on_terminal(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run ``cairn ARGS`` with stdin, stdout and stderr on a pseudo-terminal; return its
    exit status and everything it drew, escape sequences removed."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    full_env = {**os.environ, "TERM": "xterm-256color"}
    full_env.pop("CAIRN_SILENT", None)
    full_env.update(env or {})
    proc = subprocess.Popen(
        [CAIRN, *args], stdin=slave, stdout=slave, stderr=slave, env=full_env, close_fds=True
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    code = proc.wait(60)
    return code, ANSI.sub(b"", b"".join(chunks)).decode("utf-8", "replace")


def test_progress_bars_on_a_terminal_only(tmp_path: pathlib.Path) -> None:
    data = tmp_path / "many"
    for i in range(240):
        write(data / f"f{i:03}.txt", f"file {i}\n" * 50)
    code, drawn = on_terminal("artifact", "put", str(data), "-n", "p/many")
    assert code == 0, drawn
    assert "hashing" in drawn and "240/240 files" in drawn
    assert re.search(r"\d+(\.\d+)? ?[kKM]?B/s", drawn), drawn  # a rate
    assert re.search(r"\d+:\d\d:\d\d", drawn), drawn  # an ETA
    assert "created" in drawn

    code, drawn = on_terminal("artifact", "get", "p/many", "--root", str(tmp_path / "out"))
    assert code == 0 and "downloading" in drawn and "240/240 files" in drawn

    code, drawn = on_terminal("verify")
    assert code == 0 and "verifying" in drawn and ": ok" in drawn

    code, drawn = on_terminal(
        "artifact", "get", "p/many", "--root", str(tmp_path / "quiet"), env={"CAIRN_SILENT": "true"}
    )
    assert code == 0 and "downloading" not in drawn and "files" not in drawn

    piped = cairn_cli("artifact", "get", "p/many", "--root", str(tmp_path / "piped"))
    assert piped.code == 0 and piped.err == "" and "\x1b" not in piped.out
