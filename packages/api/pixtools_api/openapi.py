"""The OpenAPI document: security schemes and the access errors of guarded routes.

AccessControlMiddleware, not a route dependency, enforces API keys and rate
limits, so FastAPI cannot see them. This module adds what it enforces to the
generated document: the two ways to send a key, the security requirement of
every guarded operation, and its 401 and 429 responses with the error body.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from pixtools_api.access import PathKind, classify_path
from pixtools_api.auth import API_KEY_HEADER
from pixtools_api.schemas import ERROR_DESCRIPTIONS
from pixtools_shared.settings import Settings

ERROR_BODY_REF = {"$ref": "#/components/schemas/ErrorBody"}

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER},
    "BearerKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "The same API key as 'Authorization: Bearer <key>'.",
    },
}

RETRY_AFTER_HEADER = {
    "Retry-After": {
        "description": "Seconds to wait before repeating the request.",
        "schema": {"type": "integer"},
    }
}


def _error_response(status: int) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "description": ERROR_DESCRIPTIONS[status],
        "content": {"application/json": {"schema": ERROR_BODY_REF}},
    }
    if status in (409, 429, 503):
        entry["headers"] = RETRY_AFTER_HEADER
    return entry


def build_openapi(app: FastAPI, settings: Settings) -> dict[str, Any]:
    """Generate the document once and add the access rules to it."""
    if app.openapi_schema:
        return app.openapi_schema

    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        routes=app.routes,
    )
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    requirements: list[dict[str, list[str]]] = [{"ApiKeyHeader": []}, {"BearerKey": []}]
    if settings.allows_anonymous:
        # An empty requirement: calling without credentials is allowed too.
        requirements.append({})

    for path, operations in schema.get("paths", {}).items():
        if classify_path(path) is not PathKind.API:
            continue
        for operation in operations.values():
            operation["security"] = requirements
            responses = operation.setdefault("responses", {})
            for status in (401, 429):
                responses.setdefault(str(status), _error_response(status))
            for status in (409, 503):
                if str(status) in responses:
                    responses[str(status)].setdefault("headers", RETRY_AFTER_HEADER)

    app.openapi_schema = schema
    return schema
