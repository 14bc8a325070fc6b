"""API keys, tenancy and /metrics access on a real app (SQLite, filesystem storage)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from pixtools_api.access import PathKind, classify_path
from pixtools_api.app import create_app
from pixtools_api.auth import KeyRing, hash_api_key
from pixtools_api.conftest import build_settings, image_bytes
from pixtools_api.services import ApiServices
from pixtools_shared.db import upgrade_database
from pixtools_shared.db.models import Job
from pixtools_shared.settings import Settings

KEY_A = "key-a-0123456789abcdefghijklmnop"
KEY_B = "key-b-0123456789abcdefghijklmnop"
METRICS_TOKEN = "metrics-token-0123456789"
API_KEYS = [f"alice:{hash_api_key(KEY_A)}", f"bob:{hash_api_key(KEY_B)}"]


def make_client(tmp_path: Path, **overrides: Any) -> Iterator[TestClient]:
    settings = build_settings(tmp_path, **overrides)
    upgrade_database(settings.database_url)
    services = ApiServices.from_settings(settings)
    with TestClient(create_app(settings, services)) as client:
        yield client


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[TestClient]:
    yield from make_client(tmp_path, API_KEYS=API_KEYS, METRICS_TOKEN=METRICS_TOKEN)


def submit(client: TestClient, headers: dict[str, str] | None = None) -> Any:
    return client.post(
        "/api/process",
        files={"file": ("a.png", image_bytes(), "image/png")},
        data={"operations": '["jpg"]'},
        headers=headers or {},
    )


def error_code(response: Any) -> str:
    return str(response.json()["error"]["code"])


def test_missing_key_rejected(keyed: TestClient) -> None:
    response = submit(keyed)

    assert response.status_code == 401
    assert error_code(response) == "api-key-required"
    assert response.headers["www-authenticate"] == 'Bearer realm="pixtools"'


@pytest.mark.parametrize(
    "headers",
    [
        {"X-API-Key": "not-a-key"},
        {"Authorization": "Bearer not-a-key"},
        {"X-API-Key": KEY_A + "x"},
        {"X-API-Key": KEY_A, "Authorization": f"Bearer {KEY_B}"},
        {"X-API-Key": "k" * 600},
    ],
)
def test_wrong_key_rejected(keyed: TestClient, headers: dict[str, str]) -> None:
    response = submit(keyed, headers)

    assert response.status_code == 401
    assert error_code(response) == "invalid-api-key"


@pytest.mark.parametrize("name", ["api_key", "apikey", "key", "token", "access_token"])
def test_key_in_query_rejected(keyed: TestClient, name: str) -> None:
    # Even a valid key, and even with a valid header next to it.
    response = keyed.get(f"/api/limits?{name}={KEY_A}", headers={"X-API-Key": KEY_A})

    assert response.status_code == 401
    assert error_code(response) == "api-key-in-query"


@pytest.mark.parametrize(
    "headers", [{"X-API-Key": KEY_A}, {"Authorization": f"Bearer {KEY_A}"}]
)
def test_valid_key_accepted(keyed: TestClient, headers: dict[str, str]) -> None:
    response = submit(keyed, headers)

    assert response.status_code == 202


def test_job_owned_by_its_key(keyed: TestClient) -> None:
    job_id = submit(keyed, {"X-API-Key": KEY_A}).json()["job_id"]
    services: ApiServices = keyed.app.state.services  # type: ignore[attr-defined]

    own = keyed.get(f"/api/jobs/{job_id}", headers={"X-API-Key": KEY_A})
    other = keyed.get(f"/api/jobs/{job_id}", headers={"X-API-Key": KEY_B})
    other_events = keyed.get(f"/api/jobs/{job_id}/events", headers={"X-API-Key": KEY_B})
    missing = keyed.get(
        "/api/jobs/00000000-0000-4000-8000-000000000000", headers={"X-API-Key": KEY_B}
    )

    assert own.status_code == 200
    assert other.status_code == 404
    assert error_code(other) == "job-not-found"
    assert other.json()["error"]["message"] == missing.json()["error"][
        "message"
    ].replace("00000000-0000-4000-8000-000000000000", job_id)
    assert other_events.status_code == 404
    with services.session_factory() as session:
        assert session.scalar(select(Job.owner).where(Job.id == job_id)) == "alice"


def test_every_api_route_requires_key(keyed: TestClient) -> None:
    schema = keyed.get("/openapi.json").json()
    checked = []
    for template, operations in schema["paths"].items():
        if classify_path(template) is not PathKind.API:
            continue
        path = re.sub(r"\{[^}]+\}", "x", template)
        for method in operations:
            response = keyed.request(method.upper(), path)
            assert response.status_code == 401, (method, path)
            checked.append((method.upper(), template))

    assert ("POST", "/api/process") in checked
    assert ("GET", "/api/jobs/{job_id}") in checked
    assert ("GET", "/api/jobs/{job_id}/events") in checked
    assert ("GET", "/api/limits") in checked


@pytest.mark.parametrize("path", ["/api/health", "/api/livez", "/api/readyz", "/"])
def test_probes_and_page_public(keyed: TestClient, path: str) -> None:
    response = keyed.get(path)

    assert response.status_code != 401


def test_signed_download_needs_no_key(keyed: TestClient) -> None:
    services: ApiServices = keyed.app.state.services  # type: ignore[attr-defined]
    services.storage.put("outputs", "job-x/png.png", b"\x89PNG result", "image/png")
    url = services.storage.download_url("outputs", "job-x/png.png", "photo-png.png")

    response = keyed.get(url.removeprefix("http://testserver"))

    assert response.status_code == 200
    assert response.content == b"\x89PNG result"


def test_metrics_need_credentials(keyed: TestClient) -> None:
    assert keyed.get("/metrics").status_code == 401
    assert (
        keyed.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code
        == 401
    )
    token = keyed.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    key = keyed.get("/metrics", headers={"X-API-Key": KEY_B})

    assert token.status_code == 200
    assert key.status_code == 200
    assert "pixtools" in token.text


def test_metrics_closed_even_for_anonymous_api(tmp_path: Path) -> None:
    for client in make_client(tmp_path):
        assert client.get("/api/limits").status_code == 200
        assert client.get("/metrics").status_code == 401


def test_metrics_public_setting(tmp_path: Path) -> None:
    for client in make_client(tmp_path, API_KEYS=API_KEYS, METRICS_PUBLIC=True):
        assert client.get("/metrics").status_code == 200


def test_anonymous_allowed_next_to_keys(tmp_path: Path) -> None:
    for client in make_client(tmp_path, API_KEYS=API_KEYS, ALLOW_ANONYMOUS=True):
        anonymous = submit(client).json()["job_id"]
        keyed_job = submit(client, {"X-API-Key": KEY_A}).json()["job_id"]

        assert client.get(f"/api/jobs/{anonymous}").status_code == 200
        assert (
            client.get(
                f"/api/jobs/{anonymous}", headers={"X-API-Key": KEY_A}
            ).status_code
            == 404
        )
        assert client.get(f"/api/jobs/{keyed_job}").status_code == 404
        # A wrong key is an error, not a silent fallback to anonymous.
        assert submit(client, {"X-API-Key": "wrong"}).status_code == 401


def test_idempotency_keys_scoped_per_api_key(keyed: TestClient) -> None:
    first = submit(keyed, {"X-API-Key": KEY_A, "Idempotency-Key": "same"})
    second = submit(keyed, {"X-API-Key": KEY_B, "Idempotency-Key": "same"})
    repeat = submit(keyed, {"X-API-Key": KEY_A, "Idempotency-Key": "same"})

    assert first.status_code == second.status_code == repeat.status_code == 202
    assert first.json()["job_id"] != second.json()["job_id"]
    assert repeat.json()["job_id"] == first.json()["job_id"]
    assert repeat.headers["idempotent-replayed"] == "true"


def test_keys_never_logged(
    keyed: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    submit(keyed, {"X-API-Key": KEY_A})
    submit(keyed, {"X-API-Key": KEY_A + "typo"})
    keyed.get(f"/api/limits?api_key={KEY_B}")

    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert "request_unauthorized" in output
    assert KEY_A not in output
    assert KEY_B not in output


def test_key_ring_matches_by_digest() -> None:
    ring = KeyRing.from_settings(Settings(API_KEYS=API_KEYS))

    assert ring.match(KEY_A) == "alice"
    assert ring.match(KEY_B) == "bob"
    assert ring.match("other") is None
    assert ring.match("") is None


def test_production_requires_keys() -> None:
    secret = "s" * 40
    with pytest.raises(ValueError, match="needs API_KEYS"):
        Settings(ENVIRONMENT="production", SIGNING_SECRET=secret)

    assert Settings(
        ENVIRONMENT="production", SIGNING_SECRET=secret, ALLOW_ANONYMOUS=True
    ).allows_anonymous
    assert not Settings(
        ENVIRONMENT="production", SIGNING_SECRET=secret, API_KEYS=API_KEYS
    ).allows_anonymous


@pytest.mark.parametrize(
    "entry",
    ["plain-secret-key", "id:" + "0" * 63, "bad id:" + "0" * 64, ":" + "0" * 64],
)
def test_malformed_key_entries_rejected(entry: str) -> None:
    with pytest.raises(ValueError, match="API_KEYS entry 1"):
        Settings(API_KEYS=[entry])
