"""Schemathesis against the OpenAPI document of a real server (run by `make chaos`; collected
only when named, being slow): generated requests, with a key that may do everything, must never
get a 5xx answer."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tests._infra import ADMIN_KEY, CairnServer


@pytest.fixture(scope="session")
def api_schema(server_local: CairnServer) -> Iterator[schemathesis.BaseSchema]:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    doc = httpx.get(f"{server_local.url}/api/v1/openapi.json", headers=headers).json()
    doc.setdefault("servers", [{"url": server_local.url}])
    yield schemathesis.openapi.from_dict(doc)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_generated_request_gets_a_server_error(
    case: schemathesis.Case, server_local: CairnServer
) -> None:
    case.call_and_validate(
        base_url=server_local.url,
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        checks=[not_a_server_error],
    )
