from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from cairn.service import LocalService
from cairn.testing import ServiceTests


class TestLocalService(ServiceTests):
    @pytest.fixture
    def service(self, tmp_path: pathlib.Path) -> Iterator[LocalService]:
        svc = LocalService.open(str(tmp_path / "svc"))
        yield svc
        svc.close()
