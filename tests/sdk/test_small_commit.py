"""A re-log with a file or two changed stores their blobs with the commit's new pages, in one write
of the embedded store (one pack append, one flush, one index transaction) instead of two, and a
commit that fails before storing them leaves them to be stored by the next one."""

from __future__ import annotations

import pathlib

import pytest

import cairn
from cairn.core import digest_bytes
from cairn.service import _commit
from cairn.storage import LocalBlobStore
from tests.conftest import write
from tests.sdk.test_relog import _expected, _log, _settle


@pytest.fixture
def puts(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The digests of each write into an embedded store's blobs (the real write still runs)."""
    seen: list[list[str]] = []
    real = LocalBlobStore.put_many

    def spy(self: LocalBlobStore, items):  # type: ignore[no-untyped-def]
        seen.append([d for d, _ in items])
        return real(self, items)

    monkeypatch.setattr(LocalBlobStore, "put_many", spy)
    return seen


@pytest.mark.embedded_only
def test_a_one_file_change_is_stored_with_the_pages_in_one_write(
    tmp_path: pathlib.Path, puts: list[list[str]]
) -> None:
    root = tmp_path / "data"
    for i in range(40):
        write(root / f"d{i % 4}" / f"f{i:02}.txt", f"file {i}\n")
    first = _log(root)
    _settle()
    write(root / "d2" / "f06.txt", "changed\n")
    puts.clear()
    again = _log(root)
    assert again.version == "v1" and again.digest == _expected(root)
    # One write: the changed file's blob and the new pages of the manifest together.
    assert len(puts) == 1
    assert digest_bytes(b"changed\n") in puts[0] and again.digest in puts[0]
    out = pathlib.Path(again.download(str(tmp_path / "out")))
    assert (out / "d2" / "f06.txt").read_text() == "changed\n"
    assert first.version == "v0"


@pytest.mark.embedded_only
def test_blobs_held_for_a_commit_that_failed_are_stored_by_the_next(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "data"
    for i in range(8):
        write(root / f"f{i}.txt", f"file {i}\n")
    art = cairn.Artifact("ds", "dataset")
    art.add_dir(str(root))
    real = _commit._commit

    def fails(*args, **kw):  # type: ignore[no-untyped-def]
        raise OSError("the disk went away")

    monkeypatch.setattr(_commit, "_commit", fails)
    with cairn.init(project="p") as run, pytest.raises(OSError, match="went away"):
        run.log_artifact(art)
    monkeypatch.setattr(_commit, "_commit", real)
    # The same artifact logged again: its blobs were never stored, and are stored now.
    with cairn.init(project="p") as run:
        run.log_artifact(art)
    assert art.digest == _expected(root)
    out = pathlib.Path(art.download(str(tmp_path / "out")))
    assert sorted(p.read_text() for p in out.iterdir()) == [f"file {i}\n" for i in range(8)]
