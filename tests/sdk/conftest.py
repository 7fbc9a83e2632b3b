"""Every end-to-end SDK test runs twice: on the embedded store and through the server (PostgreSQL +
S3), unless it looks inside the embedded store (``embedded_only``). The server is the app in this
process (the fast tier), or a real server process for tests that start processes of their own
(``process_server``): those need an address to give them."""

from __future__ import annotations

import pytest


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        embedded_only = metafunc.definition.get_closest_marker("embedded_only") is not None
        metafunc.parametrize("backend", ["embedded"] if embedded_only else ["embedded", "server"])
