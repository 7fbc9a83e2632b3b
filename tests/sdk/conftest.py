"""Every end-to-end SDK test runs twice: on the embedded store and through a real server process
(PostgreSQL + S3), unless it looks inside the embedded store (``embedded_only``)."""

from __future__ import annotations

import pytest


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        embedded_only = metafunc.definition.get_closest_marker("embedded_only") is not None
        metafunc.parametrize("backend", ["embedded"] if embedded_only else ["embedded", "server"])
