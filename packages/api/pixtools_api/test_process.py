"""Tests of POST /api/process and GET /api/jobs/{job_id} on a real app."""

from __future__ import annotations

import asyncio
import json
import struct
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from pixtools_api.app import create_app
from pixtools_api.auth import ANONYMOUS
from pixtools_api.conftest import (
    TEST_MAX_UPLOAD_BYTES,
    SentTask,
    drain_queue,
    image_bytes,
)
from pixtools_api.idempotency import IdempotencyKeyInFlightError
from pixtools_api.schemas import JobPublic, OperationPublic
from pixtools_api.services import ApiServices
from pixtools_api.submission import accept_job
from pixtools_api.upload import MultipartForm, UploadedFile
from pixtools_shared.db.models import IdempotencyRecord, Job
from pixtools_shared.settings import Settings

BOUNDARY = "pixtools-test-boundary"


def post_process(
    client: TestClient,
    data: bytes,
    operations: Any = ("jpg",),
    params: Any = None,
    headers: dict[str, str] | None = None,
    filename: str = "photo.png",
) -> httpx.Response:
    fields: dict[str, str] = {
        "operations": operations
        if isinstance(operations, str)
        else json.dumps(list(operations))
    }
    if params is not None:
        fields["operation_params"] = (
            params if isinstance(params, str) else json.dumps(params)
        )
    return client.post(
        "/api/process",
        files={"file": (filename, data, "application/octet-stream")},
        data=fields,
        headers=headers or {},
    )


def count_jobs(services: ApiServices) -> int:
    with services.session_factory() as session:
        return session.scalar(select(func.count()).select_from(Job)) or 0


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "details"}
    return error


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    return struct.pack(">I", len(payload)) + kind + payload + crc


def png_pixel_bomb(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height; its pixel data is a stub."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + png_chunk(b"IEND", b"")
    )


def test_process_accepts_job_and_dispatches_tasks(
    client: TestClient, services: ApiServices
) -> None:
    data = image_bytes("PNG", (64, 48))

    response = post_process(
        client,
        data,
        operations=["jpg", "webp", "metadata", "denoise"],
        params={"jpg": {"quality": 90, "width": 32}},
    )

    assert response.status_code == 202
    body = response.json()
    job_id = body["job_id"]
    assert body["status"] == "QUEUED"
    assert body["status_url"] == f"http://testserver/api/jobs/{job_id}"
    assert response.headers["location"] == body["status_url"]

    standard = drain_queue(services.celery, "standard")
    ml = drain_queue(services.celery, "ml")
    assert standard == [
        SentTask("pixtools.convert", [job_id, "jpg"], {}),
        SentTask("pixtools.convert", [job_id, "webp"], {}),
        SentTask("pixtools.extract_metadata", [job_id, "metadata"], {}),
    ]
    assert ml == [SentTask("pixtools.denoise", [job_id, "denoise"], {})]

    assert services.storage.get("uploads", f"{job_id}/source") == data


def test_process_job_resource_lists_operations(client: TestClient) -> None:
    response = post_process(
        client,
        image_bytes("PNG", (64, 48)),
        operations=["jpg", "png"],
        params={"jpg": {"quality": 90, "width": 32}},
    )
    job_id = response.json()["job_id"]

    job = client.get(f"/api/jobs/{job_id}")

    assert job.status_code == 200
    resource = job.json()
    assert resource["job_id"] == job_id
    assert resource["status"] == "QUEUED"
    assert [op["name"] for op in resource["operations"]] == ["jpg", "png"]
    assert [op["status"] for op in resource["operations"]] == ["QUEUED", "QUEUED"]
    assert resource["operations"][0]["params"] == {
        "quality": 90,
        "width": 32,
        "height": None,
        "allow_upscale": False,
    }
    assert resource["source"] == {
        "filename": "photo.png",
        "format": "PNG",
        "width": 64,
        "height": 48,
        "size_bytes": len(image_bytes("PNG", (64, 48))),
    }
    assert resource["archive_url"] is None


def test_job_not_found(client: TestClient) -> None:
    response = client.get("/api/jobs/00000000-0000-4000-8000-000000000000")

    assert response.status_code == 404
    assert error_of(response)["code"] == "job-not-found"


def test_job_not_found_for_overlong_id(client: TestClient) -> None:
    response = client.get("/api/jobs/" + "a" * 500)

    assert response.status_code == 404
    assert error_of(response)["code"] == "job-not-found"


def test_process_rejects_large_upload_by_content_length(
    client: TestClient, services: ApiServices
) -> None:
    data = b"\x89PNG\r\n\x1a\n" + b"\x00" * (TEST_MAX_UPLOAD_BYTES + 200_000)

    response = post_process(client, data)

    assert response.status_code == 413
    assert error_of(response)["code"] == "upload-too-large"
    assert count_jobs(services) == 0
    assert services.storage.list_keys("uploads") == []


def call_asgi_with_chunks(
    app: Any, headers: list[tuple[bytes, bytes]], chunks: list[bytes]
) -> tuple[int, dict[str, Any], int]:
    """Send a chunked request straight to the ASGI app, as uvicorn would.

    TestClient reads a streamed request body completely before it calls the
    app, so it cannot show when the app stops reading. Returns the status, the JSON
    body and how many chunks the app consumed.
    """
    consumed = 0
    status = 0
    body = bytearray()

    async def receive() -> dict[str, Any]:
        nonlocal consumed
        if consumed < len(chunks):
            consumed += 1
            more = consumed < len(chunks)
            return {
                "type": "http.request",
                "body": chunks[consumed - 1],
                "more_body": more,
            }
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body.extend(message.get("body", b""))

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/process",
        "raw_path": b"/api/process",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    asyncio.run(app(scope, receive, send))
    return status, json.loads(body), consumed


def test_process_rejects_large_upload_while_streaming(
    settings: Settings, services: ApiServices
) -> None:
    # A chunked body has no Content-Length, so the limit applies while reading.
    head = (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="operations"\r\n\r\n'
        '["jpg"]\r\n'
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="big.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    chunks = [head + b"\x89PNG\r\n\x1a\n"]
    chunks += [b"\x00" * 8192] * 200
    chunks.append(f"\r\n--{BOUNDARY}--\r\n".encode())
    headers = [
        (b"host", b"testserver"),
        (b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode()),
        (b"transfer-encoding", b"chunked"),
    ]

    status, body, consumed = call_asgi_with_chunks(
        create_app(settings, services), headers, chunks
    )

    assert status == 413
    assert body["error"]["code"] == "upload-too-large"
    # The limit is 300 000 bytes, about 37 chunks of 8 KiB; the body has 202.
    assert consumed < 45
    assert count_jobs(services) == 0


@pytest.mark.parametrize(
    ("data", "detected"),
    [
        (b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", "PDF"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64, "HEIC"),
        (b"just some plain text, not an image\n", "text"),
    ],
)
def test_process_rejects_unsupported_format(
    client: TestClient, services: ApiServices, data: bytes, detected: str
) -> None:
    response = post_process(client, data, filename="photo.jpg")

    assert response.status_code == 415
    error = error_of(response)
    assert error["code"] == "unsupported-format"
    assert error["details"] == [
        {"field": "file", "message": f"detected format: {detected}"}
    ]
    assert count_jobs(services) == 0
    assert services.storage.list_keys("uploads") == []


def test_process_rejects_unknown_binary(client: TestClient) -> None:
    response = post_process(client, bytes(range(256)) * 4)

    assert response.status_code == 415
    error = error_of(response)
    assert error["code"] == "unsupported-format"
    assert error["details"] == []


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (3_000, 3_000),  # 9 megapixels: above the test limit of 4, below Pillow's.
        (15_000, 15_000),  # 225 megapixels: above Pillow's own bomb limit too.
    ],
)
def test_process_rejects_pixel_bomb(
    client: TestClient, services: ApiServices, width: int, height: int
) -> None:
    response = post_process(client, png_pixel_bomb(width, height))

    assert response.status_code == 413
    error = error_of(response)
    assert error["code"] == "image-too-large"
    assert str(width * height) in error["message"]
    assert count_jobs(services) == 0
    assert services.storage.list_keys("uploads") == []


def test_process_rejects_overlong_side(client: TestClient) -> None:
    response = post_process(client, png_pixel_bomb(25_000, 10))

    assert response.status_code == 413
    assert error_of(response)["code"] == "image-too-large"


def test_process_rejects_empty_file(client: TestClient) -> None:
    response = post_process(client, b"")

    assert response.status_code == 422
    assert error_of(response)["code"] == "invalid-image"


def test_process_rejects_truncated_image(client: TestClient) -> None:
    response = post_process(client, image_bytes("PNG")[:20])

    assert response.status_code == 422
    assert error_of(response)["code"] == "invalid-image"


@pytest.mark.parametrize(
    ("operations", "params", "field", "message"),
    [
        (["jpg", "gif"], None, "operations[1]", "unknown operation 'gif'"),
        (["jpg", "jpg"], None, "operations[1]", "duplicate operation 'jpg'"),
        (["jpg"], {"jpg": {"qualty": 80}}, "params.jpg.qualty", "unknown parameter"),
        (["jpg"], {"jpg": {"quality": 0}}, "params.jpg.quality", "greater than"),
        (["jpg"], {"jpg": {"quality": 101}}, "params.jpg.quality", "less than"),
        (["jpg"], {"png": {}}, "params.png", "not requested"),
        ("[jpg", None, "operations", "JSON list"),
        (["jpg"], "{not json", "params", "JSON object"),
        ([], None, "operations", "at least one"),
    ],
)
def test_process_rejects_invalid_operations(
    client: TestClient,
    services: ApiServices,
    operations: Any,
    params: Any,
    field: str,
    message: str,
) -> None:
    response = post_process(client, image_bytes(), operations=operations, params=params)

    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "invalid-operations"
    assert error["details"][0]["field"] == field
    assert message in error["details"][0]["message"]
    assert count_jobs(services) == 0
    assert drain_queue(services.celery, "standard") == []


def test_process_requires_operations_field(client: TestClient) -> None:
    response = client.post(
        "/api/process", files={"file": ("a.png", image_bytes(), "image/png")}
    )

    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "invalid-operations"
    assert error["details"] == [{"field": "operations", "message": "field required"}]


def test_process_requires_file(client: TestClient) -> None:
    response = client.post(
        "/api/process",
        data={"operations": '["jpg"]'},
        files={"other": ("a.png", b"x", "image/png")},
    )

    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "invalid-request"
    assert error["details"] == [{"field": "other", "message": "unknown field"}]
    assert "the form takes file, operation_params, operations" in error["message"]


def test_process_rejects_json_body(client: TestClient) -> None:
    response = client.post("/api/process", json={"operations": ["jpg"]})

    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported-media-type"


@pytest.mark.parametrize(
    "key", ["k" * 256, "has space", "semi;colon", '"quoted space"', "a,b"]
)
def test_process_rejects_invalid_idempotency_key(
    client: TestClient, services: ApiServices, key: str
) -> None:
    response = post_process(client, image_bytes(), headers={"Idempotency-Key": key})

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid-idempotency-key"
    assert error["details"][0]["field"] == "Idempotency-Key"
    assert count_jobs(services) == 0


def test_process_repeat_with_idempotency_key_returns_same_job(
    client: TestClient, services: ApiServices
) -> None:
    data = image_bytes()
    headers = {"Idempotency-Key": "4b1e6a52-1111-4c1e-9a55-0a1b2c3d4e5f"}

    first = post_process(client, data, operations=["jpg", "png"], headers=headers)
    second = post_process(client, data, operations=["jpg", "png"], headers=headers)

    assert first.status_code == 202
    assert second.status_code == 202
    assert second.json()["job_id"] == first.json()["job_id"]
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert count_jobs(services) == 1
    assert len(drain_queue(services.celery, "standard")) == 2
    assert services.storage.list_keys("uploads") == [f"{first.json()['job_id']}/source"]


def test_process_idempotency_key_reused_for_other_request(
    client: TestClient, services: ApiServices
) -> None:
    headers = {"Idempotency-Key": "reused-key"}
    first = post_process(client, image_bytes(), operations=["jpg"], headers=headers)

    second = post_process(client, image_bytes(), operations=["png"], headers=headers)

    assert first.status_code == 202
    assert second.status_code == 422
    assert error_of(second)["code"] == "idempotency-key-reused"
    assert count_jobs(services) == 1


def test_process_without_key_creates_two_jobs(
    client: TestClient, services: ApiServices
) -> None:
    first = post_process(client, image_bytes())
    second = post_process(client, image_bytes())

    assert first.json()["job_id"] != second.json()["job_id"]
    assert count_jobs(services) == 2


def status_url_for(job_id: str) -> str:
    return f"http://testserver/api/jobs/{job_id}"


def test_unfinished_claim_answers_in_flight(services: ApiServices) -> None:
    # A record without a job is the claim of a request still being accepted.
    form = MultipartForm(
        file=UploadedFile("a.png", "image/png", image_bytes()),
        fields={"operations": '["jpg"]'},
    )
    with services.session_factory() as session:
        session.add(
            IdempotencyRecord(
                scope="",
                key="busy-key",
                request_fingerprint="0" * 64,
                job_id=None,
                created_at=datetime.now(UTC),
                expires_at=datetime.now(UTC) + timedelta(hours=1),
            )
        )
        session.commit()

    with pytest.raises(IdempotencyKeyInFlightError):
        accept_job(services, form, ANONYMOUS, "busy-key", status_url_for)

    assert count_jobs(services) == 0
    assert services.storage.list_keys("uploads") == []


def test_stale_claim_taken_over(services: ApiServices) -> None:
    form = MultipartForm(
        file=UploadedFile("a.png", "image/png", image_bytes()),
        fields={"operations": '["jpg"]'},
    )
    with services.session_factory() as session:
        session.add(
            IdempotencyRecord(
                scope="",
                key="crashed-key",
                request_fingerprint="0" * 64,
                job_id=None,
                created_at=datetime.now(UTC) - timedelta(minutes=10),
                expires_at=datetime.now(UTC) + timedelta(hours=1),
            )
        )
        session.commit()

    accepted = accept_job(services, form, ANONYMOUS, "crashed-key", status_url_for)

    assert accepted.replayed is False
    with services.session_factory() as session:
        [record] = session.scalars(select(IdempotencyRecord)).all()
    assert record.job_id == accepted.job_id
    assert record.response_status == 202
    assert record.response_body == {
        "job_id": accepted.job_id,
        "status": "QUEUED",
        "status_url": status_url_for(accepted.job_id),
    }


def test_expired_idempotency_key_starts_over(services: ApiServices) -> None:
    form = MultipartForm(
        file=UploadedFile("a.png", "image/png", image_bytes()),
        fields={"operations": '["jpg"]'},
    )
    first = accept_job(services, form, ANONYMOUS, "old-key", status_url_for)
    with services.session_factory() as session:
        session.execute(
            update(IdempotencyRecord).values(
                expires_at=datetime.now(UTC) - timedelta(seconds=1)
            )
        )
        session.commit()

    second = accept_job(services, form, ANONYMOUS, "old-key", status_url_for)

    assert second.replayed is False
    assert second.job_id != first.job_id
    assert count_jobs(services) == 2
    with services.session_factory() as session:
        records = session.scalars(select(IdempotencyRecord)).all()
    assert [(record.key, record.job_id) for record in records] == [
        ("old-key", second.job_id)
    ]


def test_failed_acceptance_frees_key(
    services: ApiServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    form = MultipartForm(
        file=UploadedFile("a.png", "image/png", image_bytes()),
        fields={"operations": '["jpg"]'},
    )

    def broken_put(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(services.storage, "put", broken_put)
    with pytest.raises(OSError, match="disk full"):
        accept_job(services, form, ANONYMOUS, "retry-key", status_url_for)
    monkeypatch.undo()

    accepted = accept_job(services, form, ANONYMOUS, "retry-key", status_url_for)

    assert accepted.replayed is False
    assert count_jobs(services) == 1


@pytest.mark.parametrize(
    ("webhook_url", "message"),
    [
        ("ftp://example.com/hook", "scheme"),
        ("https://127.0.0.1/hook", "is a loopback address"),
        ("https://user:secret@example.com/hook", "credentials"),
        ("https://example.com/" + "a" * 3000, "longer than"),
    ],
)
def test_process_rejects_invalid_webhook_url(
    client: TestClient, services: ApiServices, webhook_url: str, message: str
) -> None:
    response = client.post(
        "/api/process",
        files={"file": ("a.png", image_bytes(), "image/png")},
        data={"operations": '["jpg"]', "webhook_url": webhook_url},
    )

    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "invalid-webhook-url"
    assert error["details"][0]["field"] == "webhook_url"
    assert message in error["details"][0]["message"]
    assert count_jobs(services) == 0


def test_process_stores_normalised_webhook_url(client: TestClient) -> None:
    response = client.post(
        "/api/process",
        files={"file": ("a.png", image_bytes(), "image/png")},
        data={
            "operations": '["jpg"]',
            "webhook_url": " HTTPS://Example.COM/hook?id=7 ",
        },
    )
    job = client.get(f"/api/jobs/{response.json()['job_id']}").json()

    assert response.status_code == 202
    assert job["webhook"]["url"] == "https://example.com/hook?id=7"
    assert job["webhook"]["status"] == "PENDING"


def test_job_resource_matches_documented_schema(client: TestClient) -> None:
    response = post_process(client, image_bytes(), operations=["jpg", "metadata"])
    resource = client.get(f"/api/jobs/{response.json()['job_id']}").json()

    validated = JobPublic.model_validate(resource)

    assert set(resource) == set(JobPublic.model_fields)
    assert set(resource["operations"][0]) == set(OperationPublic.model_fields)
    assert validated.job_id == response.json()["job_id"]
