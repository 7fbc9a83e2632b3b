"""Lazy re-exports (PEP 562): a package names its public objects and loads each on first use.

``import cairn`` and ``cairn --help`` must not pay for SQLAlchemy, the HTTP client or the staging
pipeline they never touch. A package lists, per private module, the names it re-exports; the module
is imported when one of them is first read, and the object is then cached on the package, so the
cost is paid once and later reads are plain attribute reads. ``__all__`` and ``dir()`` stay whole.

Type checkers cannot see through ``__getattr__``: each package repeats its re-exports as
``if TYPE_CHECKING:`` imports, and ``tests/test_imports.py`` checks both lists name the same objects.
"""

from __future__ import annotations

import importlib
import sys

# Not `from typing import TYPE_CHECKING`: `import cairn` would then load typing, re and collections
# (a tenth of its cost); type checkers treat any name TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, Sequence[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``, re-exporting ``{module: names}`` lazily.

    Modules are given relative to ``package`` (``"._api"``) or absolute."""
    origin = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = origin.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        # Cached on the package: the next read does not come back here.
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        namespace = vars(sys.modules[package])
        return sorted(set(namespace) | set(origin) | set(namespace.get("__all__", ())))

    return __getattr__, __dir__
