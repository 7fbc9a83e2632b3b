"""``cairn cache cleanup``, ``cairn gc`` and ``cairn verify``: keeping caches and stores healthy."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import click

from cairn import sdk
from cairn.cli._output import emit_json, json_option
from cairn.errors import ValidationError
from cairn.sdk import format_size as size

if TYPE_CHECKING:  # the CLI builds its parser without loading the store
    from cairn.service import LocalService

F = TypeVar("F", bound=Callable[..., Any])


def _size_param(value: str) -> int:
    try:
        return sdk.parse_size(value)
    except ValidationError as exc:
        raise click.BadParameter(str(exc), param_hint="TARGET_SIZE") from None


def _duration_param(value: str) -> float:
    try:
        return sdk.parse_duration(value)
    except ValidationError as exc:
        raise click.BadParameter(str(exc), param_hint="'--grace'") from None


@click.group()
def cache() -> None:
    """Manage the download cache ($CAIRN_CACHE_DIR)."""


@cache.command()
@click.argument("target_size")
@click.option("--remove-temp", is_flag=True, help="Also remove partial downloads (none running).")
@json_option
def cleanup(target_size: str, remove_temp: bool, as_json: bool) -> None:
    """Shrink the download cache to TARGET_SIZE (e.g. 10GB, 500MB, 2GiB), least recently used
    blobs first."""
    report = sdk.cleanup_cache(_size_param(target_size), remove_temp=remove_temp)
    if as_json:
        emit_json(report.to_json())
        return
    click.echo(
        f"removed {report.removed_files} files ({size(report.removed_bytes)}) from"
        f" {report.cache_dir}; it holds {report.remaining_files} files"
        f" ({size(report.remaining_bytes)})"
    )
    if remove_temp:
        click.echo(
            f"removed {report.temp_files_removed} partial files ({size(report.temp_bytes_removed)})"
        )


def _server_options(f: F) -> F:
    """``--db``/``--store``: work on a server's catalog and store (on the server's machine)."""
    f = click.option(
        "--store",
        envvar="CAIRN_SERVER_STORE",
        help="A server's blob store (directory or s3://...). [env: CAIRN_SERVER_STORE]",
    )(f)
    return click.option(
        "--db",
        envvar="CAIRN_SERVER_DB",
        help="A server's catalog: work on its store instead of the embedded one, with the"
        " servers running. [env: CAIRN_SERVER_DB]",
    )(f)


@contextlib.contextmanager
def _store(db: str | None, store: str | None) -> Iterator[LocalService | None]:
    """A server's service when --db/--store are given, else None (the embedded store). Its
    abandoned uploads are swept on the way (older than CAIRN_SERVER_UPLOAD_MAX_AGE)."""
    if not db and not store:
        yield None
        return
    from cairn.server import Backend, ServerConfig

    backend = Backend.open(ServerConfig.from_env(os.environ, db=db, store=store))
    try:
        backend.transfers.sweep(backend.config.upload_max_age)
        yield backend.service
    finally:
        backend.close()


@click.command()
@click.option("--dry-run", is_flag=True, help="Only report what would be removed.")
@click.option(
    "--grace",
    default="1h",
    show_default=True,
    help="Spare unreferenced blobs younger than this (e.g. 30m, 2h, 0): they may belong to a"
    " version being logged right now.",
)
@_server_options
@json_option
def gc(dry_run: bool, grace: str, db: str | None, store: str | None, as_json: bool) -> None:
    """Remove stored blobs that no version uses (e.g. after `cairn artifact rm`).

    Safe while other processes log: content of a commit in progress is never removed. With
    --db/--store it works on a server's store, safe while the servers run (they share a lock).
    """
    with _store(db, store) as service:
        report = sdk.collect_garbage(
            grace_seconds=_duration_param(grace), dry_run=dry_run, service=service
        )
    if as_json:
        emit_json(report.to_json())
        return
    verb = "would remove" if dry_run else "removed"
    click.echo(
        f"{verb} {report.removed_blobs} blobs ({size(report.removed_bytes)}) that no version uses;"
        f" {report.live_blobs} of {report.blobs} blobs are in use"
    )
    if report.young_blobs:
        click.echo(
            f"spared {report.young_blobs} unused blobs ({size(report.young_bytes)}) younger than"
            f" {grace}"
        )
    if report.temp_files_removed:
        click.echo(f"removed {report.temp_files_removed} stale partial files")


@click.command()
@click.argument("scope", required=False)
@_server_options
@json_option
def verify(scope: str | None, db: str | None, store: str | None, as_json: bool) -> None:
    """Re-hash stored blobs and check that every committed version's blobs exist.

    SCOPE narrows the check to a project, project/name (all its versions) or
    project/name:version; without it every blob in the store is re-hashed. Exits 1 if any blob
    is missing or damaged, naming the versions and files it belongs to. With --db/--store it
    checks a server's store.
    """
    with _store(db, store) as service:
        report = sdk.verify_store(scope, service=service)
    if as_json:
        emit_json(report.to_json())
    else:
        for problem in report.problems:
            click.echo(problem.message())
        status = "ok" if report.ok else f"{len(report.problems)} problems"
        click.echo(
            f"checked {report.versions} versions, {report.blobs} blobs ({size(report.bytes)}):"
            f" {status}"
        )
    if not report.ok:
        raise SystemExit(1)
