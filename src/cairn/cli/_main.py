"""Entry point, global options and error handling of the ``cairn`` command."""

from __future__ import annotations

import sys
from typing import Any

import click

from cairn import __version__
from cairn.errors import CairnError


class CairnGroup(click.Group):
    """Turns cairn's errors into one line and exit status 1 (a traceback only with --debug)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (CairnError, FileNotFoundError, PermissionError) as exc:
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


from cairn.cli._server import keys, server  # noqa: E402 - commands register on the group above

cli.add_command(server)
cli.add_command(keys)


def main() -> None:
    sys.exit(cli(standalone_mode=True))
