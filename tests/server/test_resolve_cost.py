"""What a server's ``resolve`` costs the catalog: one statement outside a transaction on
PostgreSQL (no BEGIN and COMMIT round trips), the hot path of ``use_artifact("name:latest")``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from cairn.service import CommitRequest
from tests._infra import reset_database
from tests.conftest import InProcess


def test_a_resolve_is_one_statement_outside_a_transaction(inprocess: InProcess) -> None:
    server = inprocess("postgres", "local")
    reset_database(server.db)
    service = server.backend.service
    done = service.commit(
        CommitRequest("me", "proj", "ds", "dataset", changes=[], aliases=["best"])
    ).version
    assert done is not None
    engine = server.backend.catalog.engine
    seen: list[tuple[str, bool]] = []

    def count(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append((statement, bool(conn.connection.dbapi_connection.autocommit)))

    event.listen(engine, "before_cursor_execute", count)
    try:
        for label in (None, "best", "v0"):
            seen.clear()
            assert service.resolve("me", "proj", "ds", label).id == done.id
            assert len(seen) == 1, [s for s, _ in seen]
            assert seen[0][1], "the statement ran inside a transaction (BEGIN ... COMMIT)"
    finally:
        event.remove(engine, "before_cursor_execute", count)
