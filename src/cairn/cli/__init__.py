"""The ``cairn`` command line: each command parses, makes one call, prints."""

from cairn.cli._main import cli, main

__all__ = ["cli", "main"]
