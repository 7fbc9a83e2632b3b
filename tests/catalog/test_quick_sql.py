"""The quick path's SQL (``catalog/_quick_sql.py``, run on plain sqlite3 by ``_quick_tx.py``) is
the repositories' own statements (``catalog/_statements.py``) compiled to SQLite's text: one
source per statement. When a statement changes, regenerate with
``.venv/bin/python -m cairn.catalog._statements``."""

from __future__ import annotations

import sqlite3

from cairn.catalog import _quick_sql, _statements


def _generated() -> dict[str, str]:
    return {
        name: value
        for name, value in vars(_quick_sql).items()
        if name.isupper() and isinstance(value, str)
    }


def test_the_quick_sql_is_the_statements_compiled() -> None:
    assert _generated() == _statements.quick_sql(), (
        "catalog/_quick_sql.py is stale: run `.venv/bin/python -m cairn.catalog._statements`"
    )


def test_a_changed_statement_is_seen(monkeypatch: object) -> None:
    """The comparison above fails when a repository's statement changes and the text does not."""
    from sqlalchemy import bindparam, select

    from cairn.catalog import _schema as s

    quick = dict(_statements.QUICK)
    p = s.projects.c
    quick["PROJECT_ID"] = (select(p.id).where(p.name == bindparam("name")), None)
    original = _statements.QUICK
    _statements.QUICK = quick
    try:
        assert _generated() != _statements.quick_sql()
    finally:
        _statements.QUICK = original


def test_every_quick_statement_runs_on_a_current_catalog(tmp_path: object) -> None:
    """Each text prepares on the schema the migrations make (sqlite3 checks every name)."""
    from cairn.catalog import Catalog, upgrade

    path = f"{tmp_path}/c.sqlite"
    catalog = Catalog(f"sqlite:///{path}", create=True)
    upgrade(catalog)
    catalog.dispose()
    db = sqlite3.connect(path)
    try:
        for name, sql in _generated().items():
            if name.endswith(("_COLUMNS", "_PARAMS")):
                continue  # a statement's column names, or what it binds itself
            sql = sql.replace("__[POSTCOMPILE_ids]", ":ids")  # an IN list, one id here
            # Raises on a wrong table or column name.
            db.execute("EXPLAIN " + sql, dict.fromkeys(_names(sql)))
            assert name in _statements.QUICK
    finally:
        db.close()


def _names(sql: str) -> list[str]:
    import re

    return re.findall(r"(?<![:\w]):(\w+)", sql)
