"""Schemathesis against the OpenAPI document of a real server (run by `make chaos`; collected
only when named, being slow): generated requests, with a key that may do everything, must never
get a 5xx answer, and every answer's status and content type must be ones the document declares
for its route.

Schemathesis' Python API drives hypothesis here rather than its pytest plugin, whose lazy fixture
does not run under pytest 9."""

from __future__ import annotations

from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    status_code_conformance,
)

from tests._infra import ADMIN_KEY, CairnServer

EXAMPLES = 25


def test_no_generated_request_gets_a_server_error_or_an_undeclared_status(
    server_local: CairnServer,
) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    doc = httpx.get(f"{server_local.url}/api/v1/openapi.json", headers=headers).json()
    doc.setdefault("servers", [{"url": server_local.url}])
    schema = schemathesis.openapi.from_dict(doc)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            case.call_and_validate(
                base_url=server_local.url,
                headers=headers,
                checks=[not_a_server_error, status_code_conformance, content_type_conformance],
            )

        try:
            check()
        except Exception as exc:  # noqa: BLE001 - collected, reported together
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}"[:600])
    print(f"{operations} operations, {EXAMPLES} examples each")
    assert not failures, "\n".join(failures)
