"""What a server answers for a store's error that names the store's location."""

from __future__ import annotations

from cairn._lazy import TYPE_CHECKING

if TYPE_CHECKING:  # a staging worker loads this module: no typing at run time
    from typing import TypeVar

    from cairn.errors import CairnError

    E = TypeVar("E", bound=CairnError)


def location_withheld(err: E, location: str) -> E:
    """``err``, whose text names a store's ``location`` (a server's directory, its bucket): a
    server answers it with "the server's store" in its place (``CairnError.public``) and logs
    the text."""
    err.public = str(err).replace(location, "the server's store")
    return err
