"""The distribution's name and its extras: what to install when a feature's packages are missing.

``pip install cairn-artifacts`` gives the embedded store, the SDK and the CLI; the web UI, the
server, S3 and the data integrations come with extras (pyproject.toml). Stdlib only: every layer
may import it.
"""

from __future__ import annotations

import importlib.util

DIST_NAME = "cairn-artifacts"


class MissingExtraError(ImportError):
    """A feature's optional packages are not installed; the message names the extra to install."""


def install_hint(extra: str) -> str:
    """The command that installs ``extra``, as a user types it."""
    return f"pip install '{DIST_NAME}[{extra}]'"


def missing_extra(feature: str, extra: str, module: str) -> MissingExtraError:
    """The error to raise when ``feature`` cannot import ``module``, which ``extra`` brings."""
    return MissingExtraError(
        f"{feature} needs the {extra!r} extra ({module} is not installed): {install_hint(extra)}",
        name=module,
    )


def require(feature: str, extra: str, *modules: str) -> None:
    """Raise `MissingExtraError` unless every one of ``modules`` can be imported."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise missing_extra(feature, extra, module)
