"""Property-based run of schemathesis against the ASGI app and its OpenAPI document.

Schemathesis generates requests for every documented operation, with and
without a valid API key, and checks each response: no 5xx, a documented
status code, content type and headers, and a body that matches the schema.
The number of examples per operation is small, so the run stays near a minute
on two cores.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from pixtools_api.app import create_app
from pixtools_api.auth import hash_api_key
from pixtools_api.conftest import build_settings
from pixtools_api.services import ApiServices
from pixtools_shared.db import upgrade_database

API_KEY = "schemathesis-key-0123456789abcdef"
# Examples of the whole run (all operations together).
MAX_EXAMPLES = 200
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def api_schema(tmp_path: Path) -> Any:
    app_settings = build_settings(
        tmp_path,
        API_KEYS=[f"fuzz:{hash_api_key(API_KEY)}"],
        # The event stream polls until a job is final; keep it short.
        EVENTS_MAX_STREAM_SECONDS=1,
    )
    upgrade_database(app_settings.database_url)
    app = create_app(app_settings, ApiServices.from_settings(app_settings))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def run_generated_cases(
    api: Any, mode: GenerationMode, headers: dict[str, str], max_examples: int
) -> Counter[str]:
    """Send ``max_examples`` generated requests; return how many per operation."""
    exercised: Counter[str] = Counter()

    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=api.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        exercised[f"{case.method} {case.path}"] += 1
        response = case.call(headers=headers)
        case.validate_response(response, checks=CHECKS)

    check()
    return exercised


def documented_operations(api: Any) -> set[str]:
    return {
        f"{result.ok().method.upper()} {result.ok().path}"
        for result in api.get_all_operations()
    }


def test_valid_requests_conform(api_schema: Any) -> None:
    exercised = run_generated_cases(
        api_schema, GenerationMode.POSITIVE, {"X-API-Key": API_KEY}, MAX_EXAMPLES
    )

    assert set(exercised) == documented_operations(api_schema)


def test_invalid_requests_conform(api_schema: Any) -> None:
    exercised = run_generated_cases(
        api_schema, GenerationMode.NEGATIVE, {"X-API-Key": API_KEY}, MAX_EXAMPLES // 2
    )

    assert exercised


def test_requests_without_key_conform(api_schema: Any) -> None:
    exercised = run_generated_cases(api_schema, GenerationMode.POSITIVE, {}, 30)

    assert exercised
