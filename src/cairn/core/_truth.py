"""The one rule for a yes/no setting given as text (environment variables, form fields)."""

from __future__ import annotations

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})


def is_true(value: str | None) -> bool:
    """Whether a variable's text means yes (``1``, ``true``, ``yes``, ``on``; any case)."""
    return (value or "").strip().lower() in TRUE_WORDS
