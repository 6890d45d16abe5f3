"""The service's OpenAPI schema, fuzzed by schemathesis against a real server: no 500, every answer as documented.

Through schemathesis' Python API rather than its pytest plugin, which does not load under pytest 9.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from .test_serving_process import server

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is a dev dependency")

EXAMPLES = 30  # per operation: about 15 s for the six on two cores


def test_every_documented_request_gets_a_documented_answer(trained_run: Path) -> None:
    with server(str(trained_run), "--cache-size", "0") as (_, url, _):
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert {operation.path for operation in operations} >= {"/v1/predict", "/v1/predict/batch", "/health"}
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
            def fuzz(case: Any) -> None:
                case.call_and_validate(timeout=10)

            fuzz()
