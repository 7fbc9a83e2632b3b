"""Schema migrations (Alembic), checked every time a catalog is opened.

The embedded store upgrades itself; a server refuses to start on an old schema unless told to
migrate (``cairn server migrate``), because several servers may share one database.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from cairn.catalog._catalog import scrub
from cairn.catalog._schema import HEAD_REVISION
from cairn.errors import CommError, UsageError

if TYPE_CHECKING:
    from cairn.catalog._catalog import Catalog

MIGRATIONS_DIR = os.path.join(os.path.dirname(__file__), "migrations")


def current_revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    rev = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return None if rev is None else str(rev)


def _alembic_config(conn: Connection) -> object:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", MIGRATIONS_DIR)
    cfg.attributes["connection"] = conn
    return cfg


def known_revisions() -> list[str]:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(MIGRATIONS_DIR)
    return [rev.revision for rev in script.walk_revisions()]


def script_head() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(MIGRATIONS_DIR).get_current_head()
    assert head is not None
    return head


@contextlib.contextmanager
def _migration_lock(catalog: Catalog, conn: Connection) -> Iterator[None]:
    """Only one process migrates at a time; the others wait, then find the work done."""
    if catalog.dialect == "postgresql":
        conn.execute(text("SELECT pg_advisory_lock(7242001)"))
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(7242001)"))
            conn.commit()
        return
    db_path = catalog.url.split("///", 1)[-1]
    import fcntl

    with open(db_path + ".migrate.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def upgrade(catalog: Catalog) -> None:
    """Bring the schema to the newest revision this version of cairn knows."""
    from alembic import command

    with catalog.engine.connect() as conn, _migration_lock(catalog, conn):
        if current_revision(conn) == HEAD_REVISION:
            return
        conn.commit()
        command.upgrade(_alembic_config(conn), "head")  # type: ignore[arg-type]
        conn.commit()


def _read_revision(catalog: Catalog) -> str | None:
    """The schema revision, waiting out another process that is creating the store."""
    delay = 0.01
    for attempt in range(40):
        try:
            with catalog.engine.connect() as conn:
                rev = current_revision(conn)
                conn.rollback()
            return rev
        except OperationalError as exc:
            text_ = str(exc.orig).lower()
            if ("locked" in text_ or "busy" in text_) and attempt < 39:
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
                continue
            raise CommError(
                f"cannot open the catalog ({catalog.display}): {scrub(str(exc.orig), catalog.url)}"
            ) from None
        except Exception as exc:  # noqa: BLE001 - any other driver error means "cannot open"
            raise CommError(
                f"cannot open the catalog ({catalog.display}): {scrub(str(exc), catalog.url)}"
            ) from None
    raise AssertionError("unreachable")


def ensure_schema(catalog: Catalog, *, create: bool) -> None:
    """Check the schema revision; upgrade it when ``create`` (the embedded store) allows."""
    rev = _read_revision(catalog)
    if rev == HEAD_REVISION:
        return
    if rev is not None and rev not in known_revisions():
        raise UsageError(
            f"the catalog {catalog.display} has schema revision {rev!r}, which this version of"
            " cairn does not know; it was written by a newer cairn: upgrade cairn"
        )
    if not create:
        raise UsageError(
            f"the catalog {catalog.display} is at schema revision {rev or 'none'},"
            f" not {HEAD_REVISION}; run `cairn server migrate` first"
        )
    upgrade(catalog)
