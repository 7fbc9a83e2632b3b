"""``python -m cairn``: the command line."""

from cairn.cli import main

main()
