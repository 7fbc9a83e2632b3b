"""The README's quickstart runs as written (docs are tested)."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

from tests.conftest import write

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_quickstart_runs(cairn_env: pathlib.Path) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    for i in range(3):
        write(f"data/images/{i}.png", f"image {i}")
    write("data/images/duplicates/0.png", "image 0")
    write("data/labels.csv", "id,label\n0,cat\n")
    write("fixed/labels.csv", "id,label\n0,dog\n")
    write("shard-3.parquet", "PAR1")
    result = subprocess.run(
        [sys.executable, "-c", code.group(1)], capture_output=True, text=True, env=os.environ.copy()
    )
    assert result.returncode == 0, result.stderr
    assert "['v1', 'v0']" in result.stdout


def test_data_tools_section_runs(cairn_env: pathlib.Path) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Use artifacts from your data tools", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    result = subprocess.run(
        [sys.executable, "-c", code.group(1)], capture_output=True, text=True, env=os.environ.copy()
    )
    assert result.returncode == 0, result.stderr
    assert "('cat', 2)" in result.stdout
    assert result.stdout.strip().endswith("['mnist/labels:latest/val.csv']")


def test_the_gallery_shows_every_page_make_screenshots_takes() -> None:
    """Each picture ``make screenshots`` takes (search, the versions table and compare among
    them) is in docs/screenshots/ and shown in the README's gallery, and the gallery shows no
    picture it no longer takes."""
    from tests.ui.screenshots import PAGES

    readme = (ROOT / "README.md").read_text()
    shown = set(re.findall(r"\(docs/screenshots/([\w-]+)\.png\)", readme))
    taken = {name for name, _ in PAGES}
    assert {"search", "versions-table", "compare", "compare-table"} <= taken
    assert shown == taken
    for name in taken:
        assert (ROOT / "docs" / "screenshots" / f"{name}.png").stat().st_size > 10_000, name
