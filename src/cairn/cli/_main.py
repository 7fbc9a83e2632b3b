"""Entry point, global options and error handling of the ``cairn`` command."""

from __future__ import annotations

import sys
from typing import Any

import click

from cairn._extras import missing_extra
from cairn._version import __version__
from cairn.cli._artifact import artifact
from cairn.cli._maintenance import cache, cleanup, gc, verify
from cairn.errors import CairnError


class CairnGroup(click.Group):
    """Turns cairn's errors into one line and exit status 1 (a traceback only with --debug)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (CairnError, OSError, ImportError) as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"cairn: error: {exc}", err=True)
            ctx.exit(1)


@click.group(cls=CairnGroup)
@click.version_option(__version__, prog_name="cairn")
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """cairn: versioned ML artifacts with the W&B Artifacts API."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


@cli.command()
@click.option(
    "--workdir",
    default="cairn-demo",
    show_default=True,
    help="Directory for the demo's input files (created).",
)
def demo(workdir: str) -> None:
    """Run the seed's scenarios end to end and print the versions they make."""
    from cairn import demo as demo_module

    demo_module.main(workdir, out=click.echo)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
def ui(host: str, port: int) -> None:
    """Browse the embedded store (CAIRN_DIR) in a web browser, on this machine.

    Projects, artifacts, versions, files, diffs and lineage; aliases can be added and removed.
    There is no sign-in: keep the default address (127.0.0.1) so only this machine can connect.
    """
    try:
        from cairn.ui import serve_local
    except ImportError as exc:
        raise missing_extra("cairn ui", "ui", exc.name or "fastapi") from None
    from cairn.sdk import Settings

    settings = Settings.from_env()
    serve_local(
        settings.dir, host, port, allow_network_fs=settings.allow_network_fs, out=click.echo
    )


cli.add_command(artifact)
# W&B spells it `wandb artifact cache cleanup`; the same command, hidden from the reference.
artifact.add_command(
    click.Group("cache", commands=[cleanup], hidden=True, help="Same as `cairn cache`.")
)
cli.add_command(cache)
cli.add_command(gc)
cli.add_command(verify)

from cairn.cli._server import keys, server  # noqa: E402 - commands register on the group above

cli.add_command(server)
cli.add_command(keys)

from cairn.cli._sync import export, import_, sync  # noqa: E402

cli.add_command(sync)
cli.add_command(export)
cli.add_command(import_)


def main() -> None:
    sys.exit(cli(standalone_mode=True))
