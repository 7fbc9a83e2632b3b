"""Printing for the command line: aligned tables for people, JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import click

from cairn.core import nonfinite_to_null

F = TypeVar("F", bound=Callable[..., Any])


def json_option(f: F) -> F:
    """The ``--json`` flag every listing command has."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of text."
    )(f)


def emit_json(value: Any) -> None:
    """Print ``value`` as strict JSON, always: NaN or infinities (stored by an older cairn) as
    null, anything else unknown as text, and ASCII escapes when the text cannot be UTF-8."""
    plain = nonfinite_to_null(value)
    text = json.dumps(plain, indent=2, ensure_ascii=False, allow_nan=False, default=str)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(plain, indent=2, ensure_ascii=True, allow_nan=False, default=str)
    click.echo(text)


def emit_json_list(items: Iterable[Any]) -> None:
    """``emit_json`` of a list, written item by item (the same text), so that listing a
    million-entry version never holds every item."""
    first = True
    for item in items:
        plain = nonfinite_to_null(item)
        text = json.dumps(plain, indent=2, ensure_ascii=False, allow_nan=False, default=str)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = json.dumps(plain, indent=2, ensure_ascii=True, allow_nan=False, default=str)
        click.echo(
            ("[\n" if first else ",\n") + "\n".join("  " + line for line in text.split("\n")),
            nl=False,
        )
        first = False
    click.echo("[]" if first else "\n]")


def emit_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Columns padded to their widest cell; numbers-like columns are not special-cased."""
    cells = [[str(h) for h in headers]] + [["-" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
