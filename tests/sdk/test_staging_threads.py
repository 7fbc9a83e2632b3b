"""Issue 13, item 3: new files are read and hashed on every core (``CAIRN_STAGE_THREADS``),
with the same result as one thread: small files in chunks, large ones several at once."""

from __future__ import annotations

import pathlib

import pytest

import cairn
from cairn.errors import ValidationError
from tests.conftest import write
from tests.sdk.test_relog import _expected


def test_every_thread_count_stages_the_same_tree(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "data"
    for i in range(700):  # several chunks of small files
        write(root / f"d{i % 7}" / f"f{i:04}.txt", f"file {i}\n" * (i % 13))
    for i in range(3):  # large files (streamed on the embedded store, batched to a server)
        write(root / "big" / f"b{i}.bin", bytes([i]) * (300_000 + i))
    digests = []
    for threads in ("1", "4"):
        monkeypatch.setenv("CAIRN_STAGE_THREADS", threads)
        art = cairn.Artifact(f"t{threads}", "dataset")
        art.add_dir(str(root))
        with cairn.init(project="p") as run:
            run.log_artifact(art)
        digests.append(art.digest)
    assert digests == [_expected(root)] * 2
    out = pathlib.Path(cairn.Api().artifact("p/t4:v0").download(str(tmp_path / "out")))
    assert (out / "big" / "b2.bin").read_bytes() == bytes([2]) * 300_002
    assert (out / "d3" / "f0003.txt").read_text() == "file 3\n" * 3


@pytest.mark.parametrize("value", ["0", "many", "-2"])
def test_a_bad_thread_count_is_refused(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAIRN_STAGE_THREADS", value)
    art = cairn.Artifact("x", "dataset")
    with pytest.raises(ValidationError, match="CAIRN_STAGE_THREADS"):
        art.add_file(write("a.txt", "a"))
