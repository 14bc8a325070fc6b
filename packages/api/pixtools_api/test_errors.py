"""Tests of the shared error body for framework errors and unexpected failures."""

from __future__ import annotations

from fastapi.testclient import TestClient

from pixtools_api.app import create_app
from pixtools_api.services import ApiServices
from pixtools_shared.settings import Settings


def test_unknown_route_has_error_body(client: TestClient) -> None:
    response = client.get("/api/nothing-here")

    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": "not-found", "message": "Not Found", "details": []}
    }


def test_wrong_method_has_error_body(client: TestClient) -> None:
    response = client.delete("/api/process")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method-not-allowed"


def test_validation_error_lists_missing_fields(client: TestClient) -> None:
    response = client.get("/api/files/outputs/job/jpg.jpg")

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid-request"
    assert {detail["field"] for detail in error["details"]} == {
        "query.expires",
        "query.filename",
        "query.signature",
    }


def test_unexpected_error_hides_traceback(
    settings: Settings, services: ApiServices
) -> None:
    app = create_app(settings, services)

    @app.get("/api/explode")
    def explode() -> None:
        raise RuntimeError("secret internal detail")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/api/explode")

    assert response.status_code == 500
    assert response.json() == {
        "error": {
            "code": "internal-error",
            "message": "An internal error occurred.",
            "details": [],
        }
    }
    assert "secret" not in response.text
    assert "Traceback" not in response.text
