"""Progress bars: drawn on a real pseudo-terminal, absent in pipes and with CAIRN_SILENT=true."""

from __future__ import annotations

import fcntl
import os
import pathlib
import pty
import re
import struct
import subprocess
import sys
import termios

import pytest

from tests._infra import CairnServer
from tests.cli.conftest import CAIRN, cairn_cli, run
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
    for i in range(600):  # three chunks of files (``_whole.CHUNK_FILES``): the bar moves, a rate
        write(data / f"f{i:03}.txt", f"file {i}\n" * 50)
    code, drawn = on_terminal("artifact", "put", str(data), "-n", "p/many")
    assert code == 0, drawn
    assert "hashing" in drawn and "600/600 files" in drawn
    assert re.search(r"\d+(\.\d+)? ?[kKM]?B/s", drawn), drawn  # a rate
    assert re.search(r"\d+:\d\d:\d\d", drawn), drawn  # an ETA
    assert "created" in drawn

    code, drawn = on_terminal("artifact", "get", "p/many", "--root", str(tmp_path / "out"))
    assert code == 0 and "downloading" in drawn and "600/600 files" in drawn

    code, drawn = on_terminal("verify")
    assert code == 0 and "verifying" in drawn and ": ok" in drawn

    code, drawn = on_terminal(
        "artifact", "get", "p/many", "--root", str(tmp_path / "quiet"), env={"CAIRN_SILENT": "true"}
    )
    assert code == 0 and "downloading" not in drawn and "files" not in drawn

    piped = cairn_cli("artifact", "get", "p/many", "--root", str(tmp_path / "piped"))
    assert piped.code == 0 and piped.err == "" and "\x1b" not in piped.out


# -- one large file: byte-level progress ----------------------------------------------------------

BIG = 24 << 20  # a checkpoint-like file: 24 chunks of 1 MiB
PLAIN = {"CAIRN_PROGRESS": "plain", "CAIRN_PROGRESS_SECONDS": "0"}  # a line at every step
LINE = re.compile(r"; (\w+) ?([^:;]*): ([\d.]+) MiB of ([\d.]+) MiB \((\d+)%\)")


def big_file(tmp_path: pathlib.Path, size: int = BIG) -> str:
    path = tmp_path / "model.ckpt"
    path.write_bytes(os.urandom(size))
    return str(path)


def phases_seen_midway(output: str) -> dict[str, set[int]]:
    """The percentages each phase of one blob reported before it was finished."""
    seen: dict[str, set[int]] = {}
    for m in LINE.finditer(output):
        phase, pct = m.group(1), int(m.group(5))
        if 0 < pct < 100:
            seen.setdefault(phase, set()).add(pct)
    return seen


SDK_SCRIPT = """
import sys, cairn
run = cairn.init(project="progress", job_type="train")
art = cairn.Artifact("ckpt", "model")
art.add_file(sys.argv[1])
print("LOGGING", file=sys.stderr, flush=True)
run.log_artifact(art)
art.wait()
run.finish()
print("DOWNLOADING", file=sys.stderr, flush=True)
cairn.Api().artifact("progress/ckpt:latest").download(sys.argv[2])
print("FILE", file=sys.stderr, flush=True)
cairn.Api().artifact("progress/ckpt:latest").file(sys.argv[2] + "-file")
"""


def test_one_large_file_reports_its_bytes_in_plain_lines_embedded(
    tmp_path: pathlib.Path,
) -> None:
    ckpt = big_file(tmp_path)
    put = cairn_cli("artifact", "put", ckpt, "-n", "p/ckpt", env=PLAIN)
    assert put.code == 0, put.err
    # Lines while the file is being stored (hashed on the way), not only at the end.
    assert len(phases_seen_midway(put.err).get("storing", ())) >= 3, put.err
    assert "storing model.ckpt" in put.err and "(done)" in put.err.splitlines()[-1]
    got = cairn_cli("artifact", "get", "p/ckpt", "--root", str(tmp_path / "out"), env=PLAIN)
    assert got.code == 0, got.err
    assert len(phases_seen_midway(got.err).get("copying", ())) >= 3, got.err
    assert (tmp_path / "out" / "model.ckpt").read_bytes() == pathlib.Path(ckpt).read_bytes()


@pytest.mark.slow  # long: dealt out first (tests/conftest.py)
def test_one_large_file_reports_its_bytes_through_a_server(
    tmp_path: pathlib.Path, server_s3: CairnServer
) -> None:
    """The SDK (add_file, log_artifact, download) in a subprocess against a server process."""
    ckpt = big_file(tmp_path, 40 << 20)  # more than two 16 MiB download ranges
    env = {
        **os.environ,
        **PLAIN,
        "CAIRN_BASE_URL": server_s3.url,
        "CAIRN_API_KEY": server_s3.create_key("progress-user", "*/*", "write"),
    }
    env.pop("CAIRN_SILENT", None)
    proc = subprocess.run(
        [sys.executable, "-c", SDK_SCRIPT, ckpt, str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    adding, _, rest = proc.stderr.partition("LOGGING")
    _, _, downloads = rest.partition("DOWNLOADING")
    downloading, _, file = downloads.partition("FILE")
    seen = phases_seen_midway(adding)
    # Sent to a server on S3 while it is hashed (the hash runs beside the upload, in a thread
    # with no bar of its own): the upload's bar moves, in steps as it is read (1 MiB).
    assert len(seen.get("uploading", ())) >= 3, adding
    seen = phases_seen_midway(downloading)
    assert len(seen.get("downloading", ())) >= 3, downloading
    # The ranges after the first 16 MiB (fetched in parallel) report too: past 40%.
    assert max(seen["downloading"]) > 40, downloading
    # Artifact.file(): the same blob, from the download cache (copied and verified) this time.
    assert len(phases_seen_midway(file).get("copying", ())) >= 3, file
    assert (tmp_path / "out" / "model.ckpt").read_bytes() == pathlib.Path(ckpt).read_bytes()


def test_silent_and_off_print_nothing(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In process (``run``): the same command, its stderr captured, several times faster."""
    ckpt = tmp_path / "small.ckpt"
    # Above the size read whole in one batch (8 MiB): streamed into the store in 1 MiB steps.
    ckpt.write_bytes(os.urandom(9 << 20))
    for var, value in PLAIN.items():
        monkeypatch.setenv(var, value)
    loud = run("artifact", "put", str(ckpt), "-n", "p/loud")
    assert loud.code == 0 and "storing small.ckpt" in loud.err, loud.err
    for i, (var, value) in enumerate(
        (("CAIRN_SILENT", "true"), ("WANDB_SILENT", "true"), ("CAIRN_PROGRESS", "off"))
    ):
        with monkeypatch.context() as env:
            env.setenv(var, value)
            put = run("artifact", "put", str(ckpt), "-n", f"p/quiet{i}")
        assert put.code == 0 and put.err == "", (var, put.err)
    monkeypatch.setenv("CAIRN_PROGRESS", "loud")
    bad = run("artifact", "put", str(ckpt), "-n", "p/bad")
    assert bad.code == 1 and "CAIRN_PROGRESS" in bad.err and "plain" in bad.err


def test_a_bar_moves_while_one_large_file_is_stored(tmp_path: pathlib.Path) -> None:
    ckpt = big_file(tmp_path)
    # Every step drawn at once (CAIRN_PROGRESS_SECONDS=0): the frames do not depend on timing.
    code, drawn = on_terminal(
        "artifact", "put", ckpt, "-n", "p/ckpt", env={"CAIRN_PROGRESS_SECONDS": "0"}
    )
    assert code == 0, drawn
    assert "storing model.ckpt" in drawn
    # rich's byte column: done/total MB; frames with part of the file stored were drawn.
    partial = {
        float(done)
        for done, total in re.findall(r"([\d.]+)/([\d.]+) MB", drawn)
        if 0 < float(done) < float(total)
    }
    assert len(partial) >= 3, drawn


def test_progress_shows_as_the_settings_handed_down_say(monkeypatch: pytest.MonkeyPatch) -> None:
    """CAIRN_SILENT / CAIRN_PROGRESS* are read once into Settings; progress follows the settings
    it is handed (W&B's ``silent`` too), not the environment at the time it starts."""
    from cairn import Settings
    from cairn.errors import ValidationError
    from cairn.sdk._settings import progress_output

    monkeypatch.setenv("CAIRN_PROGRESS", "plain")
    monkeypatch.setenv("CAIRN_PROGRESS_SECONDS", "2")
    read = Settings.from_env()
    monkeypatch.setenv("CAIRN_PROGRESS", "off")
    monkeypatch.setenv("CAIRN_SILENT", "true")
    assert progress_output(read) == ("plain", 2.0)
    assert progress_output(None) == (None, 0.0)  # a caller without settings reads them now
    assert progress_output(read.replace(silent=True)) == (None, 0.0)
    assert progress_output(Settings(silent=False, progress="plain")) == ("plain", 5.0)
    with pytest.raises(ValidationError, match="CAIRN_PROGRESS_SECONDS"):
        progress_output(Settings(progress="plain", progress_seconds="soon"))
