"""``benchmarks._common.resident``: a data set held in the page cache while a suite times runs
over it (mapped, so the host's pageout of cold unmapped page cache leaves it alone)."""

from __future__ import annotations

import os
import pathlib

from benchmarks._common import resident


def _mapped(paths: list[str]) -> set[str]:
    with open("/proc/self/maps") as f:
        return {p for line in f for p in paths if line.rstrip("\n").endswith(" " + p)}


def test_every_file_of_the_set_is_mapped_while_held_and_let_go_after(
    tmp_path: pathlib.Path,
) -> None:
    (tmp_path / "d").mkdir()
    files = [str(tmp_path / "d" / f"f{i}.bin") for i in range(3)]
    for p in files:
        with open(p, "wb") as f:
            f.write(os.urandom(10_000))
    (tmp_path / "d" / "empty.bin").touch()  # nothing to map: skipped, not an error
    with resident(str(tmp_path)):
        assert _mapped(files) == set(files)
    assert _mapped(files) == set()
