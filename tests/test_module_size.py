"""Every module of ``src/`` is small enough to read in one sitting (issue 10: no module over ~500
lines; split a bigger one by concept, not by size)."""

from __future__ import annotations

import pathlib

SRC = pathlib.Path(__file__).resolve().parents[1] / "src"
MAX_LINES = 510  # ~500: a few lines of slack, not a second module's worth


def test_no_module_is_over_about_500_lines() -> None:
    sizes = {
        str(path.relative_to(SRC)): len(path.read_text().splitlines()) for path in SRC.rglob("*.py")
    }
    assert sizes  # the scan found the package
    too_big = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert not too_big, f"split these modules by concept: {too_big}"
