"""Which modules a process loaded, and which of them are heavy: the start-up checks'
(``tests/test_imports.py``) and the re-log's (``tests/sdk/test_relog.py``) one rule."""

from __future__ import annotations

# Libraries whose import costs a start-up a visible share of its time: the CLI's parser, `import
# cairn` and a re-log must not load them.
HEAVY = {"sqlalchemy", "alembic", "httpx", "rich", "fastapi", "starlette", "uvicorn", "pandas"}


def heavy(modules: set[str]) -> list[str]:
    """The heavy ones among ``modules`` (names from ``sys.modules``), sorted."""
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)
