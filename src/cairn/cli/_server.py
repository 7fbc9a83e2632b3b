"""``cairn server`` (run, migrate) and ``cairn keys`` (create, revoke, list)."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import click

from cairn.errors import UsageError

if TYPE_CHECKING:
    from cairn.service import HttpService

_DB_HELP = "Catalog URL: postgresql://user@host/db or a SQLite path. [env: CAIRN_SERVER_DB]"
_STORE_HELP = "Blob store: a directory, or s3://bucket/prefix. [env: CAIRN_SERVER_STORE]"


@click.group(invoke_without_command=True)
@click.option("--db", envvar="CAIRN_SERVER_DB", help=_DB_HELP)
@click.option("--store", envvar="CAIRN_SERVER_STORE", help=_STORE_HELP)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--workers",
    envvar="CAIRN_SERVER_WORKERS",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server processes sharing the port (about one per core). [env: CAIRN_SERVER_WORKERS]",
)
@click.pass_context
def server(
    ctx: click.Context, db: str | None, store: str | None, host: str, port: int, workers: int
) -> None:
    """Run the cairn server (REST API under /api/v1) until interrupted.

    Every request needs an API key; CAIRN_ADMIN_KEY sets a bootstrap admin key. S3 endpoint and
    credentials come from the standard AWS variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...).
    The catalog's schema must be current: run `cairn server migrate` first.
    """
    ctx.ensure_object(dict)
    ctx.obj["db"] = db
    if ctx.invoked_subcommand is not None:
        return
    from cairn.server import ServerConfig, serve

    config = ServerConfig.from_env(os.environ, db=db, store=store)
    click.echo(f"cairn server on http://{host}:{port}/api/v1 (catalog {config.db})", err=True)
    serve(config, host, port, workers=workers)


@server.command()
@click.option("--db", envvar="CAIRN_SERVER_DB", help=_DB_HELP)
@click.pass_context
def migrate(ctx: click.Context, db: str | None) -> None:
    """Create or upgrade the catalog's tables to this version of cairn."""
    from cairn.server import migrate as run_migrate

    db = db or ctx.obj.get("db")
    if not db:
        raise UsageError("cairn server migrate needs --db (or CAIRN_SERVER_DB)")
    run_migrate(db)
    click.echo("catalog schema is current")


def _admin_service() -> HttpService:
    from cairn.sdk import Settings
    from cairn.service import HttpService

    settings = Settings.from_env()
    if not settings.base_url:
        raise UsageError("cairn keys talks to a server: set CAIRN_BASE_URL and CAIRN_API_KEY")
    return HttpService(settings.base_url, settings.api_key, settings.cache_dir)


@click.group()
def keys() -> None:
    """Manage the API keys of a server (needs CAIRN_BASE_URL and an admin CAIRN_API_KEY)."""


@keys.command()
@click.option("--user", required=True, help="The user the key acts as (its default entity).")
@click.option(
    "--project",
    default=None,
    help="Grant the role on this project only (entity/project, entity/*, or project in the"
    " user's entity). Without it: every project of the user's entity (admin: the whole server).",
)
@click.option(
    "--role",
    type=click.Choice(["read", "write", "admin"]),
    default="write",
    show_default=True,
    help="What the key may do.",
)
def create(user: str, project: str | None, role: str) -> None:
    """Create an API key and print it (it is shown only once)."""
    svc = _admin_service()
    try:
        made = svc.create_key(user, project, role)
    finally:
        svc.close()
    grants = ", ".join(f"{g['role']} on {g['entity']}/{g['project']}" for g in made["grants"])
    click.echo(f"key id {made['id']} for {made['user']} ({grants})", err=True)
    click.echo(made["key"])


@keys.command()
@click.argument("key")
def revoke(key: str) -> None:
    """Revoke KEY: its id (16 hex digits, as `cairn keys list` shows) or the whole key (only its
    id is sent). It stops working at once."""
    from cairn.service import key_id_of

    key_id = key_id_of(key)  # the secret never leaves this process, nor appears in a message
    svc = _admin_service()
    try:
        svc.revoke_key(key_id)
    finally:
        svc.close()
    click.echo(f"revoked {key_id}")


@keys.command(name="list")
def list_keys() -> None:
    """List every key (ids, users, grants; never secrets) as JSON lines."""
    svc = _admin_service()
    try:
        for key in svc.list_keys():
            click.echo(json.dumps(key, sort_keys=True))
    finally:
        svc.close()
