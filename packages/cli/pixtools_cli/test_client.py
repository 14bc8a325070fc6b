"""Tests of the HTTP client's retries and headers, over httpx.MockTransport."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from pixtools_cli.client import PixToolsClient, RetryPolicy, parse_retry_after
from pixtools_cli.errors import ApiRejectedError, ApiUnavailableError

API_URL = "http://127.0.0.1:8000"
ACCEPTED = {"job_id": "job-1", "status": "QUEUED", "status_url": "/api/jobs/job-1"}


def make_client(
    handler: Callable[[httpx.Request], httpx.Response],
    sleeps: list[float],
    api_key: str | None = None,
) -> PixToolsClient:
    return PixToolsClient(
        API_URL,
        api_key=api_key,
        retry=RetryPolicy(attempts=3, backoff_seconds=0.5, max_backoff_seconds=2.0),
        transport=httpx.MockTransport(handler),
        sleep=sleeps.append,
    )


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"\xff\xd8\xff" + b"x" * 100)
    return path


def test_submit_retries_network_error_with_same_key(photo: Path) -> None:
    seen: list[tuple[str | None, bytes]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.headers.get("Idempotency-Key"), request.read()))
        if len(seen) == 1:
            raise httpx.ConnectError("connection reset", request=request)
        return httpx.Response(
            202, json=ACCEPTED, headers={"Idempotent-Replayed": "true"}
        )

    sleeps: list[float] = []
    with make_client(handler, sleeps) as client:
        submitted = client.submit_file(
            photo,
            operations=["jpg"],
            params={"jpg": {"quality": 80}},
            webhook_url=None,
            idempotency_key="key-1",
        )

    assert submitted.job_id == "job-1"
    assert submitted.replayed is True
    assert [key for key, _body in seen] == ["key-1", "key-1"]
    # The second attempt sends the whole file again, not an exhausted stream.
    # Each attempt has its own multipart boundary, so only the lengths match.
    assert len(seen[0][1]) == len(seen[1][1])
    assert b"\xff\xd8\xff" + b"x" * 100 in seen[1][1]
    assert b'{"jpg": {"quality": 80}}' in seen[1][1]
    assert len(sleeps) == 1


def test_submit_sends_operations_and_webhook(photo: Path) -> None:
    bodies: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(request.read())
        return httpx.Response(202, json=ACCEPTED)

    with make_client(handler, []) as client:
        client.submit_file(
            photo,
            operations=["jpg", "metadata"],
            params={},
            webhook_url="https://hooks.example/pixtools",
            idempotency_key="key-2",
        )

    body = bodies[0]
    assert b'name="operations"\r\n\r\n["jpg", "metadata"]' in body
    assert b"operation_params" not in body
    assert b'name="webhook_url"\r\n\r\nhttps://hooks.example/pixtools' in body
    assert b'filename="photo.jpg"' in body


def test_rejection_is_not_retried(photo: Path) -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        body = {
            "error": {
                "code": "unsupported-format",
                "message": "HEIC files are not supported.",
                "details": [{"field": "file", "message": "detected format: HEIC"}],
            }
        }
        return httpx.Response(415, json=body)

    with make_client(handler, []) as client, pytest.raises(ApiRejectedError) as caught:
        client.submit_file(
            photo, operations=["jpg"], params={}, webhook_url=None, idempotency_key="k"
        )

    assert calls == [1]
    assert caught.value.status == 415
    assert caught.value.code == "unsupported-format"
    assert caught.value.message == "HEIC files are not supported."
    assert caught.value.details == [
        {"field": "file", "message": "detected format: HEIC"}
    ]


def test_rejection_without_json_body() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, text="<html>not found</html>")

    with make_client(handler, []) as client, pytest.raises(ApiRejectedError) as caught:
        client.get_job("job-1")

    assert caught.value.code == "http-404"
    assert caught.value.message == "The API responded with HTTP 404."


def test_server_errors_retried_then_unavailable() -> None:
    statuses: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        statuses.append(503)
        return httpx.Response(503, json={}, headers={"Retry-After": "7"})

    sleeps: list[float] = []
    with (
        make_client(handler, sleeps) as client,
        pytest.raises(ApiUnavailableError) as caught,
    ):
        client.get_job("job-1")

    assert len(statuses) == 3
    assert sleeps == [7.0, 7.0]
    assert "failed after 3 attempts (HTTP 503)" in caught.value.message


def test_server_error_then_success() -> None:
    responses = [
        httpx.Response(500, json={}),
        httpx.Response(200, json={"job_id": "j"}),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        return responses.pop(0)

    sleeps: list[float] = []
    with make_client(handler, sleeps) as client:
        job = client.get_job("j")

    assert job == {"job_id": "j"}
    assert len(sleeps) == 1
    assert 0.375 <= sleeps[0] <= 0.625


def test_job_id_is_quoted_in_path() -> None:
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.raw_path.decode())
        return httpx.Response(200, json={})

    with make_client(handler, []) as client:
        client.get_job("../admin?x=1")

    assert paths == ["/api/jobs/..%2Fadmin%3Fx%3D1"]


def test_api_key_sent_only_to_api_origin() -> None:
    keys: dict[str, str | None] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        keys[request.url.host] = request.headers.get("X-API-Key")
        return httpx.Response(200, content=b"data")

    with make_client(handler, [], api_key="secret") as client:
        client.request("GET", "api/limits", description="limits")
        with client.stream("http://storage.example/bucket/x.jpg", description="x"):
            pass

    assert keys == {"127.0.0.1": "secret", "storage.example": None}


def test_retry_delay_backoff_is_capped() -> None:
    policy = RetryPolicy(attempts=10, backoff_seconds=1.0, max_backoff_seconds=4.0)

    delays = [policy.delay(attempt) for attempt in range(1, 6)]

    assert 0.75 <= delays[0] <= 1.25
    assert 1.5 <= delays[1] <= 2.5
    assert all(3.0 <= delay <= 5.0 for delay in delays[2:])
    assert policy.delay(1, retry_after=120.0) == 30.0


def test_parse_retry_after() -> None:
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert parse_retry_after("-3") is None
    assert parse_retry_after(None) is None


def test_limits_parsed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/limits"
        return httpx.Response(200, content=json.dumps({"max_upload_bytes": 10}))

    with make_client(handler, []) as client:
        assert client.get_limits() == {"max_upload_bytes": 10}
