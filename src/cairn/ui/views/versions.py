"""A version: its details and files (a paged tree), a file's preview, and its download."""

from __future__ import annotations

import os
import tempfile
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.background import BackgroundTask

from cairn.core import ManifestEntry, VersionRecord
from cairn.errors import ArtifactNotFoundError, NotFoundError
from cairn.ui._preview import (
    MAX_IMAGE_BYTES,
    image_type,
    needs_content,
    preview,
    sniff_image,
)
from cairn.ui._snippets import file_snippets, version_snippets
from cairn.ui._tree import DirListing, list_directory
from cairn.ui._web import Ctx, mapping_rows, page_context
from cairn.ui.views._common import find_version, maybe_run, maybe_version

router = APIRouter(include_in_schema=False)
Page = Annotated[Ctx, Depends(page_context)]

BASE = "/{entity}/{project}/artifacts/{type_name}/{name}/{label}"
SMALL_DOWNLOAD = 16 * 1024 * 1024  # served from memory; larger files go through a temp file


def listing(ctx: Ctx, version: VersionRecord, directory: str, start: str) -> DirListing:
    """A page of a directory's children (cached: a version's files never change)."""
    assert version.digest is not None
    key = (version.digest, directory, start)
    cached = ctx.ui.listings.get(key)
    if cached is None:
        cached = list_directory(ctx.reader(), version.digest, directory, start=start)
        ctx.ui.listings.put(key, cached)
    return cached


def server_url(ctx: Ctx) -> str | None:
    """The address clients reach this server at (None for ``cairn ui``: the embedded store)."""
    if not ctx.ui.backend.needs_login:
        return None
    return str(ctx.request.base_url).rstrip("/")


def _breadcrumbs(directory: str) -> list[tuple[str, str]]:
    """(name, directory path) of each directory above and including ``directory``."""
    out = []
    parts = [p for p in directory.split("/") if p]
    for i, part in enumerate(parts):
        out.append((part, "/".join(parts[: i + 1]) + "/"))
    return out


def _canonical(version: VersionRecord, label: str, url: str) -> Response | None:
    """Pages are addressed by version number; an alias in the URL redirects (it can move)."""
    if version.version and label != version.version:
        return RedirectResponse(url, status_code=307)
    return None


@router.get(BASE)
def version_page(
    entity: str, project: str, type_name: str, name: str, label: str, ctx: Page
) -> Response:
    version = find_version(ctx, entity, project, type_name, name, label)
    redirect = _canonical(version, label, ctx.urls.version(version))
    if redirect:
        return redirect
    svc = ctx.service
    return ctx.render(
        "version.html",
        version=version,
        tab="overview",
        created_by=maybe_run(ctx, entity, project, version.created_by),
        base=maybe_version(ctx, version.base_version_id),
        source=maybe_version(ctx, version.source_version_id),  # a registry link's source
        links=svc.version_links(version.id),
        users=svc.version_runs(version.id, "input"),
        writers=svc.version_runs(version.id, "writer"),
        metadata=mapping_rows(version.metadata),
        listing=listing(ctx, version, "", ""),
        directory="",
        path_parts=[],
        start="",
        can_write=ctx.can_write(entity, project),
        snippets=version_snippets(version, server_url(ctx)),
    )


@router.get(BASE + "/files")
def files_root(
    entity: str, project: str, type_name: str, name: str, label: str, ctx: Page, start: str = ""
) -> Response:
    return files_page(entity, project, type_name, name, label, "", ctx, start)


@router.get(BASE + "/files/{directory:path}")
def files_page(
    entity: str,
    project: str,
    type_name: str,
    name: str,
    label: str,
    directory: str,
    ctx: Page,
    start: str = "",
) -> Response:
    version = find_version(ctx, entity, project, type_name, name, label)
    directory = directory.strip("/")
    directory = directory + "/" if directory else ""
    redirect = _canonical(version, label, ctx.urls.files(version, directory, start))
    if redirect:
        return redirect
    page = listing(ctx, version, directory, start)
    if directory and not page.items and not start:
        raise NotFoundError(f"{version.qualified_name} has no directory {directory!r}")
    return ctx.render(
        "files.html",
        version=version,
        tab="files",
        listing=page,
        directory=directory,
        path_parts=_breadcrumbs(directory),
        start=start,
    )


def _entry(ctx: Ctx, version: VersionRecord, path: str) -> ManifestEntry:
    assert version.digest is not None
    entry = ctx.reader().get(version.digest, path)
    if entry is None:
        raise ArtifactNotFoundError(f"{version.qualified_name} has no file {path!r}")
    return entry


@router.get(BASE + "/file/{path:path}")
def file_page(
    entity: str, project: str, type_name: str, name: str, label: str, path: str, ctx: Page
) -> Response:
    version = find_version(ctx, entity, project, type_name, name, label)
    redirect = _canonical(version, label, ctx.urls.file(version, path))
    if redirect:
        return redirect
    entry = _entry(ctx, version, path)
    data = ctx.service.read_blob(entry.digest) if needs_content(entry) else None
    directory = path.rsplit("/", 1)[0] + "/" if "/" in path else ""
    return ctx.render(
        "file.html",
        version=version,
        tab="files",
        entry=entry,
        extra=mapping_rows(entry.extra),
        preview=preview(entry, data),
        directory=directory,
        path_parts=_breadcrumbs(directory),
        filename=path.rsplit("/", 1)[-1],
        snippets=file_snippets(version, path, server_url(ctx)),
    )


@router.get(BASE + "/raw/{path:path}")
def raw_file(
    entity: str,
    project: str,
    type_name: str,
    name: str,
    label: str,
    path: str,
    ctx: Page,
    inline: bool = False,
) -> Response:
    """The file's bytes: a download, or (``inline=1``) an image the bytes prove to be one."""
    version = find_version(ctx, entity, project, type_name, name, label)
    entry = _entry(ctx, version, path)
    if entry.ref is not None:
        raise NotFoundError(f"{path!r} is a reference to {entry.ref}; its content is not stored")
    filename = path.rsplit("/", 1)[-1]
    # Never render a stored file as a page of this site: no script, no sniffing, no framing.
    headers = {"Content-Security-Policy": "default-src 'none'; sandbox", "Cache-Control": "private"}
    declared = image_type(path)
    if inline and declared and (entry.size or 0) <= MAX_IMAGE_BYTES:
        data = ctx.service.read_blob(entry.digest)
        if sniff_image(data, declared):
            return Response(data, media_type=declared, headers=headers)
    if entry.size is not None and entry.size <= SMALL_DOWNLOAD:
        data = ctx.service.read_blob(entry.digest)
        headers["Content-Disposition"] = _attachment(filename)
        return Response(data, media_type="application/octet-stream", headers=headers)
    fd, tmp = tempfile.mkstemp(prefix="cairn-ui-", suffix=".download")
    os.close(fd)
    try:
        ctx.service.download_blob(entry.digest, tmp)
    except BaseException:
        os.unlink(tmp)
        raise
    return FileResponse(
        tmp,
        media_type="application/octet-stream",
        filename=filename,
        headers=headers,
        background=BackgroundTask(os.unlink, tmp),
    )


def _attachment(filename: str) -> str:
    from urllib.parse import quote

    ascii_name = "".join(c if 32 <= ord(c) < 127 and c not in '"\\;' else "_" for c in filename)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"
