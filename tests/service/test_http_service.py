"""The Service conformance suite against real server processes: PostgreSQL with a local blob
directory, and PostgreSQL with S3 (moto)."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from cairn.service._http import HttpService
from cairn.testing import ServiceTests
from tests._infra import CairnServer, reset_database


class TestHttpService(ServiceTests):
    @pytest.fixture(params=["local", "s3"])
    def service(
        self, request: pytest.FixtureRequest, tmp_path: pathlib.Path
    ) -> Iterator[HttpService]:
        server: CairnServer = request.getfixturevalue(f"server_{request.param}")
        reset_database(server.db)
        svc = HttpService(server.url, server.create_key("me"), str(tmp_path / "cache"))
        yield svc
        svc.close()
