"""Generate the CLI reference (docs/cli.md) from the commands themselves.

``python -m cairn.cli.docs > docs/cli.md``; a test checks the file is up to date.
"""

from __future__ import annotations

import inspect

import click

from cairn.cli._main import cli


def _walk(cmd: click.Command, path: list[str], out: list[str]) -> None:
    ctx = click.Context(cmd, info_name=" ".join(path), terminal_width=100, max_content_width=100)
    title = " ".join(path)
    out.append(f"{'#' * min(len(path) + 1, 4)} `{title}`\n")
    help_text = inspect.cleandoc(cmd.help or "")
    if help_text:
        out.append(help_text + "\n")
    out.append("```\n" + cmd.get_help(ctx).replace("\b\n", "") + "\n```\n")
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                _walk(sub, [*path, name], out)


def render() -> str:
    out = [
        "# cairn command line reference\n",
        "Generated from the commands by `make docs` (`python -m cairn.cli.docs`); a test checks",
        "it is current. Every command exits 0 on success, 1 on an error (a one-line message;",
        "`cairn --debug ...` shows the traceback) and 2 on a usage error.\n",
    ]
    _walk(cli, ["cairn"], out)
    return "\n".join(out)


if __name__ == "__main__":
    print(render(), end="")
