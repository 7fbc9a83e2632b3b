"""Bundles: ``cairn export`` / ``cairn import``. A bundle is a directory holding an embedded store
plus ``cairn-bundle.json`` (written last, so an interrupted export is not mistaken for a bundle);
see docs/design.md."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

from cairn.errors import (
    DigestMismatchError,
    UsageError,
    ValidationError,
)
from cairn.sdk import _progress
from cairn.sdk._session import open_embedded
from cairn.sdk._settings import Settings
from cairn.sdk._sync import ProgressFactory, sync_stores
from cairn.sdk._sync_plan import SyncOptions, SyncReport
from cairn.service import LocalService, Service

BUNDLE_FILE = "cairn-bundle.json"
BUNDLE_FORMAT = "cairn.bundle/1"


def _all_versions(store: Service) -> Iterator[tuple[str, str, str, str, str]]:
    for entity, project in store.list_projects():
        for coll in store.list_collections(entity, project):
            for v in store.list_versions(entity, project, coll.name):
                assert v.version is not None and v.digest is not None
                yield entity, project, coll.name, v.version, v.digest


def export_bundle(
    source: Service,
    path: str,
    options: SyncOptions = SyncOptions(),
    *,
    progress: ProgressFactory = _progress.progress,
    settings: Settings | None = None,
) -> SyncReport:
    """Write (or bring up to date) a bundle directory at ``path`` from ``source`` (opened as
    ``settings`` allow; by default the environment's, read now)."""
    path = os.path.abspath(os.path.expanduser(path))
    if os.path.isdir(path) and os.listdir(path) and not _is_store(path):
        raise UsageError(f"{path} exists and is not a cairn bundle; give a new or empty directory")
    bundle = open_embedded(path, Settings.from_env() if settings is None else settings)
    try:
        report = sync_stores(source, bundle, options, progress=progress)
        if not report.dry_run and not report.refused:
            _write_manifest(bundle, path)
    finally:
        bundle.close()
    return report


def _is_store(path: str) -> bool:
    return os.path.exists(os.path.join(path, "cairn-store.json"))


def _write_manifest(bundle: Service, path: str) -> None:
    versions = [
        {"entity": e, "project": p, "name": n, "version": v, "digest": d}
        for e, p, n, v, d in _all_versions(bundle)
    ]
    body = {
        "format": BUNDLE_FORMAT,
        "created_at": time.time(),
        "store": "cairn-store.json, catalog.sqlite and blobs/: an embedded cairn store",
        "versions": versions,
    }
    target = os.path.join(path, BUNDLE_FILE)
    tmp = f"{target}.{os.getpid()}.partial"
    with open(tmp, "w") as f:
        json.dump(body, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)


def _read_manifest(path: str) -> dict[str, Any]:
    target = os.path.join(path, BUNDLE_FILE)
    if not os.path.exists(target) or not _is_store(path):
        raise UsageError(
            f"{path} is not a complete cairn bundle (no {BUNDLE_FILE}): an export that did not"
            " finish? Run `cairn export` again"
        )
    with open(target) as f:
        try:
            body = json.load(f)
        except ValueError as exc:
            raise ValidationError(f"{target} is damaged: {exc}") from None
    if not isinstance(body, dict) or body.get("format") != BUNDLE_FORMAT:
        raise ValidationError(
            f"{target} has format {body.get('format') if isinstance(body, dict) else None!r};"
            f" this cairn reads {BUNDLE_FORMAT!r}: upgrade cairn"
        )
    return body


def verify_bundle(path: str, settings: Settings | None = None) -> LocalService:
    """Open a bundle after checking it: its manifest lists versions the store holds with those
    digests, and every blob re-hashes to its digest (``DigestMismatchError`` otherwise)."""
    path = os.path.abspath(os.path.expanduser(path))
    body = _read_manifest(path)
    bundle = open_embedded(path, Settings.from_env() if settings is None else settings)
    try:
        listed = {
            (str(v["entity"]), str(v["project"]), str(v["name"]), str(v["version"])): v["digest"]
            for v in body.get("versions", [])
        }
        held = {(e, p, n, v): d for e, p, n, v, d in _all_versions(bundle)}
        for key, digest in listed.items():
            if held.get(key) != digest:
                raise DigestMismatchError(
                    f"bundle {path}: {'/'.join(key[:3])}:{key[3]} is listed with digest {digest}"
                    f" but the bundle holds {held.get(key) or 'nothing'}; export it again"
                )
        check = bundle.verify()
        if not check.ok:
            first = check.problems[0].message()
            raise DigestMismatchError(
                f"bundle {path} is damaged: {len(check.problems)} problems, e.g. {first}"
            )
    except BaseException:
        bundle.close()
        raise
    return bundle


def import_bundle(
    dest: Service,
    path: str,
    options: SyncOptions = SyncOptions(),
    *,
    progress: ProgressFactory = _progress.progress,
    settings: Settings | None = None,
) -> SyncReport:
    """Verify the bundle at ``path``, then sync it into ``dest``."""
    bundle = verify_bundle(path, settings)
    try:
        return sync_stores(bundle, dest, options, progress=progress)
    finally:
        bundle.close()


def export_to(path: str, options: SyncOptions = SyncOptions()) -> SyncReport:
    """``cairn export PATH``: a bundle of the current store (``CAIRN_DIR`` or the server)."""
    from cairn.sdk._session import current_session

    settings = Settings.from_env()
    return export_bundle(current_session(settings).service, path, options, settings=settings)


def import_from(path: str, options: SyncOptions = SyncOptions()) -> SyncReport:
    """``cairn import PATH``: verify a bundle and sync it into the current store."""
    from cairn.sdk._session import current_session

    settings = Settings.from_env()
    return import_bundle(current_session(settings).service, path, options, settings=settings)
