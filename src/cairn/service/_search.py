"""What a search asks (``SearchRequest``) and answers (``SearchResult``); see ``Service.search``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cairn.core import CollectionRecord, RunRecord, VersionRecord
from cairn.errors import ValidationError

SEARCH_KINDS = ("project", "collection", "version", "run")
VERSION_SORTS = ("version", "created", "size", "files")
MAX_SEARCH_LIMIT = 200
MAX_SEARCH_OFFSET = 1_000_000


@dataclass(frozen=True, slots=True)
class SearchRequest:
    """Find projects, collections, committed versions and runs that match ``query`` (the search
    box's syntax: words, ``type:``, ``tag:``, ``alias:``, ``name:``, ``key:value``, ``key>n``).

    ``projects`` limits the search to those (entity, project) pairs (None: every project the
    caller may read). ``collection`` (entity, project, name) asks for that collection's versions
    only (its versions table). Versions are ordered by ``sort`` (``version``, ``created``,
    ``size``, ``files``); each kind is paged by ``offset`` and ``limit``.
    """

    query: str = ""
    kinds: tuple[str, ...] = SEARCH_KINDS
    projects: tuple[tuple[str, str], ...] | None = None
    collection: tuple[str, str, str] | None = None
    sort: str = "created"
    descending: bool = True
    offset: int = 0
    limit: int = 20

    def check(self) -> SearchRequest:
        """The request itself if it is valid; else ``ValidationError`` saying what to change."""
        unknown = [k for k in self.kinds if k not in SEARCH_KINDS]
        if unknown or not self.kinds:
            raise ValidationError(
                f"search kinds must be among {', '.join(SEARCH_KINDS)}; not {unknown or 'none'}"
            )
        if self.sort not in VERSION_SORTS:
            raise ValidationError(f"sort must be one of {', '.join(VERSION_SORTS)}")
        if not 1 <= self.limit <= MAX_SEARCH_LIMIT:
            raise ValidationError(f"limit must be between 1 and {MAX_SEARCH_LIMIT}")
        if not 0 <= self.offset <= MAX_SEARCH_OFFSET:
            raise ValidationError(f"offset must be between 0 and {MAX_SEARCH_OFFSET:,}")
        return self


@dataclass(frozen=True, slots=True)
class SearchResult:
    """One page of each kind asked for, and how many of each match (``totals``), counted up to
    1,000 (``cairn.core._search.COUNT_CAP``) or one past the page asked for, whichever is more:
    a total above 1,000 is a lower bound (shown "1,000+")."""

    projects: tuple[tuple[str, str], ...] = ()
    collections: tuple[CollectionRecord, ...] = ()
    versions: tuple[VersionRecord, ...] = ()
    runs: tuple[RunRecord, ...] = ()
    totals: Mapping[str, int] = field(default_factory=dict)
