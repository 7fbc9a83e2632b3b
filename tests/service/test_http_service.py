"""The Service conformance suite against the server: in process over every catalog and store
(PostgreSQL or SQLite, a local blob directory or S3 on moto), and once through a real server
process (PostgreSQL + S3) for what only HTTP on a socket shows."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from cairn.service._http import HttpService
from cairn.testing import ServiceTests
from tests._infra import CairnServer, reset_database
from tests.conftest import InProcess


class TestHttpServiceInProcess(ServiceTests):
    @pytest.fixture(
        params=["postgres-local", "postgres-s3", "sqlite-local", "sqlite-s3"],
    )
    def service(
        self, request: pytest.FixtureRequest, tmp_path: pathlib.Path, inprocess: InProcess
    ) -> Iterator[HttpService]:
        server = inprocess(*request.param.split("-"))
        reset_database(server.db)
        svc = server.service(server.create_key("me"), str(tmp_path / "cache"))
        yield svc
        svc.close()


class TestHttpServiceProcess(ServiceTests):
    @pytest.fixture
    def service(self, server_s3: CairnServer, tmp_path: pathlib.Path) -> Iterator[HttpService]:
        reset_database(server_s3.db)
        svc = HttpService(server_s3.url, server_s3.create_key("me"), str(tmp_path / "cache"))
        yield svc
        svc.close()
