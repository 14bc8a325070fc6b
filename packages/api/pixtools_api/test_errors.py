"""Tests of the shared error body for framework errors and unexpected failures."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from pixtools_api.app import create_app
from pixtools_api.conftest import build_settings, image_bytes
from pixtools_api.services import ApiServices
from pixtools_shared.settings import Settings
from pixtools_shared.testing import free_port


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


def test_unreachable_database_is_503(tmp_path: Path) -> None:
    # Nothing listens on the port, as when PostgreSQL is down or restarting.
    port = free_port()
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/pixtools?connect_timeout=2"
    settings = build_settings(tmp_path, DATABASE_URL=url)
    services = ApiServices.from_settings(settings)
    app = create_app(settings, services)

    with TestClient(app, raise_server_exceptions=False) as client:
        read = client.get("/api/jobs/00000000-0000-4000-8000-000000000000")
        created = client.post(
            "/api/process",
            files={"file": ("photo.png", image_bytes(), "image/png")},
            data={"operations": '["webp"]'},
        )

    for response in (read, created):
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        error = response.json()["error"]
        assert error["code"] == "database-unavailable"
        assert str(port) not in error["message"]
    services.close()
