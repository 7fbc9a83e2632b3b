"""What the embedded store's files say without opening the store (no SQLAlchemy loaded): its
format, the local user, and read-only answers straight from a current catalog (issue 13: a cold
``cairn artifact ls`` should not pay for importing SQLAlchemy). ``LocalService.open`` is the
one place that creates, upgrades or refuses a store; every function here answers None where it
would have to, and the caller then goes through ``LocalService``."""

from __future__ import annotations

import getpass
import json
import os

from cairn.catalog import quick_collections
from cairn.core import CollectionRecord

# 2: small blobs in pack files (1: in small.sqlite's ``blob`` table; moved into packs on open).
STORE_FORMAT = 2
FORMATS_READ = (1, 2)
MARKER = "cairn-store.json"


def local_user() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "local"
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in user) or "local"


def store_format(root: str) -> object:
    """The format ``cairn-store.json`` names, or None when there is no (readable) marker."""
    try:
        with open(os.path.join(root, MARKER)) as f:
            return json.load(f).get("format")
    except (OSError, ValueError, AttributeError):
        return None


def embedded_collections(
    root: str, entity: str, project: str, type_name: str | None = None
) -> list[CollectionRecord] | None:
    """``LocalService.list_collections`` of the store at ``root`` read with ``sqlite3``, or None
    when only opening the store can answer (no store, another format, a network file system, a
    catalog that is not current)."""
    root = os.path.abspath(os.path.expanduser(root))
    if store_format(root) != STORE_FORMAT:
        return None
    from cairn.storage import network_filesystem

    if network_filesystem(root) is not None:
        return None  # LocalService.open refuses it, or was told to allow it: its decision
    return quick_collections(os.path.join(root, "catalog.sqlite"), entity, project, type_name)
