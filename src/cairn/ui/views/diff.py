"""The difference between two versions of an artifact: metadata paths added, removed and changed;
files added, removed and modified; and what changed inside modified text, CSV, JSON and Tables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from cairn.core import (
    COMMITTED,
    ManifestEntry,
    MetadataDiff,
    VersionRecord,
    diff_metadata,
    diff_trees,
    format_size,
)
from cairn.errors import NotFoundError
from cairn.service import SearchRequest
from cairn.ui._content_diff import (
    MAX_DIFF_BYTES,
    MAX_DIFFED_FILES,
    ContentDiff,
    content_diff,
    diffable,
    too_large,
)
from cairn.ui._web import Ctx, page_context
from cairn.ui.views._common import find_version, maybe_version
from cairn.ui.views.versions import BASE

router = APIRouter(include_in_schema=False)
Page = Annotated[Ctx, Depends(page_context)]

MAX_LISTED = 1000  # paths listed per kind of change; the totals count them all
MAX_CHOICES = 200  # versions in the "compare with" list
MAX_PROBES = 20  # versions looked up one by one for "the version before" (deleted ones skipped)


@dataclass(frozen=True, slots=True)
class Totals:
    files: int
    bytes: int


@dataclass(frozen=True, slots=True)
class DiffView:
    old: VersionRecord
    new: VersionRecord
    added: list[ManifestEntry]
    removed: list[ManifestEntry]
    modified: list[tuple[ManifestEntry, ManifestEntry]]
    added_total: Totals
    removed_total: Totals
    modified_total: Totals  # bytes: new size minus old size
    max_listed: int
    metadata: MetadataDiff
    contents: list[ContentDiff]
    undiffed: int  # modified text files beyond MAX_DIFFED_FILES


def _contents(
    ctx: Ctx, modified: list[tuple[ManifestEntry, ManifestEntry]]
) -> tuple[list[ContentDiff], int]:
    """Content diffs of the first modified files that are text, CSV, JSON or Tables."""
    out: list[ContentDiff] = []
    skipped = 0
    for old, new in modified:
        if not (diffable(old) and diffable(new)):
            continue
        if len(out) >= MAX_DIFFED_FILES:
            skipped += 1
            continue
        if too_large(old, new):
            note = (
                f"too large to diff (over {format_size(MAX_DIFF_BYTES, binary=True)});"
                " download both sides"
            )
            out.append(ContentDiff(new.path, "too_large", note=note))
            continue
        out.append(
            content_diff(
                new.path, ctx.service.read_blob(old.digest), ctx.service.read_blob(new.digest)
            )
        )
    return out, skipped


def _default_against(
    ctx: Ctx, version: VersionRecord, versions: list[VersionRecord]
) -> VersionRecord | None:
    """What a version is compared with by default: its base, else the version before it
    (looked for among ``versions``, the newest ones, then by number)."""
    by_id = {v.id: v for v in versions}
    if version.base_version_id:
        base = by_id.get(version.base_version_id) or maybe_version(ctx, version.base_version_id)
        if base is not None and base.state == COMMITTED:
            return base
    index = version.index or 0
    older = [v for v in versions if (v.index or 0) < index]
    if older:
        return max(older, key=lambda v: v.index or 0)
    for i in range(index - 1, max(index - 1 - MAX_PROBES, -1), -1):
        try:
            return ctx.service.resolve(version.entity, version.project, version.name, f"v{i}")
        except NotFoundError:
            continue
    return None


def _size(entries: list[ManifestEntry]) -> int:
    return sum(e.size or 0 for e in entries)


@router.get(BASE + "/diff")
def diff_page(
    entity: str,
    project: str,
    type_name: str,
    name: str,
    label: str,
    ctx: Page,
    against: str = "",
) -> Response:
    version = find_version(ctx, entity, project, type_name, name, label)
    # The newest versions fill the "compare with" list; a collection with more gets a text box
    # (any version number or alias), so a page of a 10,000-version collection stays small.
    newest = ctx.service.search(
        SearchRequest(
            kinds=("version",),
            collection=(entity, project, name),
            sort="version",
            limit=MAX_CHOICES,
        )
    )
    versions = list(newest.versions)
    other = (
        find_version(ctx, entity, project, type_name, name, against)
        if against
        else _default_against(ctx, version, versions)
    )
    view = None
    if other is not None:
        assert other.digest is not None and version.digest is not None
        d = diff_trees(ctx.reader(), other.digest, version.digest)
        added, removed, modified = list(d.added), list(d.removed), list(d.modified)
        contents, undiffed = _contents(ctx, modified)
        view = DiffView(
            old=other,
            new=version,
            added=added[:MAX_LISTED],
            removed=removed[:MAX_LISTED],
            modified=modified[:MAX_LISTED],
            added_total=Totals(len(added), _size(added)),
            removed_total=Totals(len(removed), _size(removed)),
            modified_total=Totals(
                len(modified), _size([n for _, n in modified]) - _size([o for o, _ in modified])
            ),
            max_listed=MAX_LISTED,
            metadata=diff_metadata(other.metadata, version.metadata),
            contents=contents,
            undiffed=undiffed,
        )
    return ctx.render(
        "diff.html",
        version=version,
        tab="diff",
        versions=versions,
        all_listed=newest.totals.get("version", 0) <= len(versions),
        against=other,
        diff=view,
    )
