"""The one yes/no rule for settings given as text, used by the SDK, the embedded store and the
server alike (issue 10: one set of truthy values)."""

from __future__ import annotations

import pathlib

import pytest

from cairn.core import is_true

SRC = pathlib.Path(__file__).resolve().parents[2] / "src" / "cairn"


@pytest.mark.parametrize("text", ["1", "true", "TRUE", "yes", "Yes", "on", " on "])
def test_yes(text: str) -> None:
    assert is_true(text)


@pytest.mark.parametrize("text", [None, "", "0", "false", "no", "off", "2", "enabled"])
def test_no(text: str | None) -> None:
    assert not is_true(text)


def test_no_other_package_spells_the_truthy_words() -> None:
    """A second list of truthy words is how one setting came to accept "on" and another not."""
    spelled = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if path.name != "_truth.py" and '"yes", "on"' in path.read_text(encoding="utf-8")
    ]
    assert spelled == []
