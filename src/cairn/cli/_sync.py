"""``cairn sync``, ``cairn export`` and ``cairn import``: copying history between stores."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from cairn import sdk
from cairn.cli._output import emit_json, json_option
from cairn.errors import ValidationError
from cairn.sdk import format_size as size

if TYPE_CHECKING:
    # The sync module brings the catalog; the parser (`cairn --help`) must not load it.
    from cairn.sdk import SyncOptions, SyncReport

F = TypeVar("F", bound=Callable[..., Any])


def _filters(f: F) -> F:
    options = [
        click.option(
            "--project",
            "projects",
            multiple=True,
            help="Only this project (entity/project, or project in any entity); repeatable.",
        ),
        click.option(
            "--artifact",
            "artifacts",
            multiple=True,
            help="Only artifacts (collections) of this name; repeatable.",
        ),
        click.option(
            "--since",
            help="Only versions created since then: a date (2026-11-01), a time"
            " (2026-11-01T12:00, UTC) or a duration back from now (7d, 12h).",
        ),
        click.option("--dry-run", is_flag=True, help="Only report what would be copied."),
        click.option(
            "--fail-on-conflict",
            is_flag=True,
            help="Change nothing if a version would be renumbered or an alias moved.",
        ),
        click.option(
            "--move-aliases",
            is_flag=True,
            help="Move aliases that point at other versions at the destination.",
        ),
        click.option("--to-entity", help="Copy everything under this entity at the destination."),
        json_option,
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _options(kw: dict[str, Any]) -> SyncOptions:
    since = kw.pop("since", None)
    try:
        since_at = None if since is None else sdk.parse_since(since)
    except ValidationError as exc:
        raise click.BadParameter(str(exc), param_hint="'--since'") from None
    return sdk.SyncOptions(
        projects=kw.pop("projects"),
        artifacts=kw.pop("artifacts"),
        since=since_at,
        dry_run=kw.pop("dry_run"),
        fail_on_conflict=kw.pop("fail_on_conflict"),
        move_aliases=kw.pop("move_aliases"),
        entity=kw.pop("to_entity"),
    )


def _print(report: SyncReport, as_json: bool) -> None:
    if as_json:
        emit_json(report.to_json())
    else:
        for old, new in report.renumbered:
            click.echo(f"renumbered {old} -> {new}")
        for alias in report.aliases_kept:
            click.echo(f"alias {alias} points at another version there: kept (--move-aliases)")
        for alias in report.aliases_moved:
            click.echo(f"moved alias {alias}")
        verb = "would copy" if report.dry_run else "copied"
        click.echo(
            f"{verb} {report.copied} versions ({report.conflicting} renumbered),"
            f" {report.already_there} already there; {report.runs_copied} runs;"
            f" sent {report.blobs_sent} blobs ({size(report.bytes_sent)})"
            f" in {report.seconds:.1f} s"
        )
        if report.refused:
            click.echo("conflicts (--fail-on-conflict): nothing was changed", err=True)
    if report.refused:
        raise SystemExit(1)


@click.command()
@click.argument("source")
@click.argument("destination")
@click.option(
    "--source-key",
    envvar="CAIRN_SOURCE_API_KEY",
    help="API key for a server SOURCE (default: $CAIRN_SOURCE_API_KEY).",
)
@click.option(
    "--destination-key",
    envvar="CAIRN_DESTINATION_API_KEY",
    help="API key for a server DESTINATION (default: $CAIRN_DESTINATION_API_KEY).",
)
@_filters
def sync(
    source: str,
    destination: str,
    source_key: str | None,
    destination_key: str | None,
    as_json: bool,
    **kw: Any,
) -> None:
    """Copy projects, versions, aliases, runs and lineage from SOURCE to DESTINATION.

    Each is an embedded store (a directory) or a server (http(s)://host:port). Versions keep
    their numbers and times; content the destination has is not sent again, so a second sync
    sends nothing and an interrupted one resumes. A destination artifact with other history gets
    the source's versions appended under new numbers (printed, and kept in each version's
    metadata as "cairn_sync").
    """
    report = sdk.sync(
        source,
        destination,
        _options(kw),
        source_key=source_key,
        destination_key=destination_key,
    )
    _print(report, as_json)


@click.command("export")
@click.argument("path")
@_filters
def export(path: str, as_json: bool, **kw: Any) -> None:
    """Write the store (CAIRN_DIR or the server) to a bundle directory PATH.

    A bundle is an embedded store plus cairn-bundle.json, for copying by hand (air-gapped
    machines); exporting again into the same PATH adds only what is new.
    """
    _print(sdk.export_to(path, _options(kw)), as_json)


@click.command("import")
@click.argument("path")
@_filters
def import_(path: str, as_json: bool, **kw: Any) -> None:
    """Verify the bundle directory PATH (every blob re-hashed) and copy it into the store."""
    _print(sdk.import_from(path, _options(kw)), as_json)
