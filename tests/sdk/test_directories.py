"""A first log's readers open each file by its name in its directory (``_whole.Directories``):
a directory one may pass through but not list must serve as its whole path did."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from typing import Any

import pytest

from cairn.sdk import _whole

pytestmark = pytest.mark.embedded_only  # no store involved: once is enough


def _read_in_child(directory: str, name: str) -> int:
    """Exit status of a child that, as a user who may only pass through ``directory`` (root
    becomes nobody), opens ``name`` in it through ``Directories`` and reads it: 0 if it did."""
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's exit status is the result
        try:
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            with _whole.Directories() as dirs:
                fd = dirs.open(directory, name)
            ok = os.read(fd, 4) == b"data"
            os._exit(0 if ok else 2)
        except OSError:
            os._exit(1)
        finally:
            os._exit(3)  # anything else: never back into pytest in the child
    return os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])


def test_a_file_in_a_directory_one_may_only_pass_through_is_read() -> None:
    """Opening the directory for reading (to open its files relative to it) was refused for a
    directory of mode 0711 (others) or 0311 (its owner): ``add_file`` of a file in a shared home
    directory failed with EACCES where opening it by its whole path works (fails on 88d90df)."""
    top = tempfile.mkdtemp(prefix="cairn-dirs-")
    try:
        os.chmod(top, 0o755)
        inner = os.path.join(top, "home")
        os.mkdir(inner)
        with open(os.path.join(inner, "f.bin"), "wb") as f:
            f.write(b"data")
        os.chmod(os.path.join(inner, "f.bin"), 0o644)
        os.chmod(inner, 0o711 if os.geteuid() == 0 else 0o311)
        assert not stat.S_IRUSR & os.stat(inner).st_mode or os.geteuid() == 0
        assert _read_in_child(inner, "f.bin") == 0
    finally:
        os.chmod(os.path.join(top, "home"), 0o755)
        shutil.rmtree(top)


def test_a_directory_that_cannot_be_opened_falls_back_to_the_whole_path(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the system has no ``O_PATH`` the directory is opened for reading; refused, the
    file is opened by its whole path, and the next file tries its directory again."""
    (tmp_path / "f.bin").write_bytes(b"data")
    real = os.open
    refused: list[str] = []

    def refusing(path: Any, flags: int, *args: Any, **kw: Any) -> int:
        if kw.get("dir_fd") is None and os.path.isdir(path):
            refused.append(str(path))
            raise PermissionError(13, "Permission denied", path)
        return real(path, flags, *args, **kw)

    monkeypatch.setattr(os, "open", refusing)
    with _whole.Directories() as dirs:
        for _ in range(2):
            fd = dirs.open(str(tmp_path), "f.bin")
            try:
                assert os.read(fd, 4) == b"data"
            finally:
                os.close(fd)
    assert refused == [str(tmp_path)] * 2
