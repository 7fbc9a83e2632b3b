"""What every catalog repository shares: the transaction it works in, the clock, JSON text.

A repository holds the rules of one concept (versions, aliases, lineage, ...) over that
concept's tables. All the repositories of one ``Tx`` share its connection, so whatever they do
commits or rolls back together; one repository reaches another through ``self.tx`` (for example
``self.tx.aliases.assign(...)``), never through a copy of its SQL.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cairn.catalog._tx import Tx


def now() -> float:
    return time.time()


def to_json(value: Any) -> str:
    """The JSON text the catalog stores (sorted keys, no spaces: equal values, equal text)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class Repository:
    """One concept's rows, read and written inside the transaction ``tx``."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx
        self.conn = tx.conn
