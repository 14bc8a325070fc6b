"""End-to-end tests over HTTP: submit images, let the real workers run, check outputs.

Each test runs once per platform profile (see conftest.py): ``servers``
(PostgreSQL, RabbitMQ, Redis, moto S3) and ``embedded`` (SQLite, filesystem
storage and broker, started by the launcher).
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from e2e_images import (
    ALPHA_FILL,
    ALPHA_SIZE,
    CAMERA_MAKE,
    CAMERA_MODEL,
    GPS_LATITUDE,
    GPS_LONGITUDE,
    PHOTO_DISPLAY_SIZE,
    SampleImage,
    build_alpha_png,
    build_photo_jpeg,
)
from e2e_platform import E2E_MAX_UPLOAD_BYTES, Platform, ml_worker_available
from e2e_processes import CLEAN_EXIT_CODES
from e2e_servers import WebhookReceiver
from PIL import Image

FINAL_STATUSES = {"COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "EXPIRED"}
JOB_TIMEOUT_SECONDS = 300.0
WEBHOOK_TIMEOUT_SECONDS = 60.0
IMAGE_OPERATIONS = ("jpg", "png", "webp", "avif")


def submit(
    platform: Platform,
    image: SampleImage,
    operations: list[str],
    params: dict[str, Any] | None = None,
    webhook_url: str | None = None,
    idempotency_key: str | None = None,
) -> httpx.Response:
    data = {"operations": json.dumps(operations)}
    if params is not None:
        data["operation_params"] = json.dumps(params)
    if webhook_url is not None:
        data["webhook_url"] = webhook_url
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    return httpx.post(
        f"{platform.base_url}/api/process",
        files={"file": (image.filename, image.data, "application/octet-stream")},
        data=data,
        headers=headers,
        timeout=60,
    )


def wait_for_job(platform: Platform, job_id: str) -> dict[str, Any]:
    """Poll the job until it reaches a final status; fail with the logs if not."""
    deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = httpx.get(f"{platform.base_url}/api/jobs/{job_id}", timeout=30)
        assert response.status_code == 200, response.text
        job = response.json()
        if job["status"] in FINAL_STATUSES:
            return job
        time.sleep(0.5)
    pytest.fail(
        f"job {job_id} still {job.get('status')} after {JOB_TIMEOUT_SECONDS} s: "
        f"{json.dumps(job)[:2000]}\n{platform.logs()}"
    )


def download(url: str) -> httpx.Response:
    response = httpx.get(url, timeout=60)
    assert response.status_code == 200, (
        f"{url}: {response.status_code} {response.text[:300]}"
    )
    return response


def operations_by_name(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {operation["name"]: operation for operation in job["operations"]}


def open_output(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def pixel(image: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    value = image.getpixel(xy)
    assert isinstance(value, tuple), f"{image.mode} pixel {value!r} is not a tuple"
    return value


def assert_no_exif(name: str, image: Image.Image, data: bytes) -> None:
    assert "exif" not in image.info, f"{name} carries an EXIF block"
    assert len(image.getexif()) == 0, f"{name} carries EXIF tags"
    assert "xmp" not in image.info, f"{name} carries XMP"
    assert b"Exif\x00\x00" not in data, f"{name} contains an EXIF header"


def is_red(value: tuple[int, ...]) -> bool:
    red, green, blue = value[:3]
    return red > 200 and green < 70 and blue < 70


def assert_archive_holds(archive: bytes, outputs: dict[str, bytes]) -> None:
    with zipfile.ZipFile(io.BytesIO(archive)) as bundle:
        members = {info.filename: bundle.read(info) for info in bundle.infolist()}
    digests = {hashlib.sha256(data).hexdigest() for data in members.values()}
    assert len(members) == len(outputs), sorted(members)
    for name, data in outputs.items():
        assert hashlib.sha256(data).hexdigest() in digests, f"{name} missing from ZIP"


def test_pending_job_survives_restart(platform: Platform) -> None:
    # Submitted while only the API ran; the workers started afterwards.
    job = wait_for_job(platform, platform.pending_job_id)

    assert job["status"] == "COMPLETED", json.dumps(job)
    assert [op["status"] for op in job["operations"]] == ["SUCCEEDED", "SUCCEEDED"]


def test_health_reports_every_dependency(platform: Platform) -> None:
    response = httpx.get(f"{platform.base_url}/api/health", timeout=30)

    assert response.status_code == 200
    checks = response.json()["checks"]
    expected = {"database", "broker", "storage"} | (
        {"redis"} if platform.has_redis else set()
    )
    assert set(checks) == expected
    assert {check["status"] for check in checks.values()} == {"ok"}


def test_photo_conversions_and_metadata(platform: Platform) -> None:
    photo = build_photo_jpeg()
    params = {
        "jpg": {"quality": 80},
        "png": {"width": 600, "height": 600},
        "webp": {"width": 1000},
        "avif": {"height": 450, "quality": 50},
    }
    expected_sizes = {
        "jpg": PHOTO_DISPLAY_SIZE,
        "png": (400, 600),
        "webp": (1000, 1500),
        "avif": (300, 450),
    }

    response = submit(platform, photo, [*IMAGE_OPERATIONS, "metadata"], params)
    assert response.status_code == 202, response.text
    job = wait_for_job(platform, response.json()["job_id"])

    assert job["status"] == "COMPLETED", json.dumps(job)
    assert job["source"]["width"] == PHOTO_DISPLAY_SIZE[0]
    assert job["source"]["height"] == PHOTO_DISPLAY_SIZE[1]
    operations = operations_by_name(job)
    outputs: dict[str, bytes] = {}
    for name, operation in operations.items():
        assert operation["status"] == "SUCCEEDED", operation
        result = download(operation["result_url"])
        assert "attachment" in result.headers["content-disposition"]
        outputs[name] = result.content

    for name in IMAGE_OPERATIONS:
        image = open_output(outputs[name])
        width, height = expected_sizes[name]
        assert image.size == (width, height), name
        assert (operations[name]["width"], operations[name]["height"]) == (
            width,
            height,
        )
        assert_no_exif(name, image, outputs[name])

        # The stored top-left red square shows at the top-right after rotation.
        rgb = image.convert("RGB")
        corners = {
            "top-right": pixel(rgb, (int(width * 0.925), int(height * 0.05))),
            "top-left": pixel(rgb, (int(width * 0.075), int(height * 0.05))),
            "bottom-right": pixel(rgb, (int(width * 0.925), int(height * 0.95))),
            "bottom-left": pixel(rgb, (int(width * 0.075), int(height * 0.95))),
        }
        assert is_red(corners["top-right"]), f"{name}: {corners}"
        assert not is_red(corners["top-left"]), f"{name}: {corners}"
        assert not is_red(corners["bottom-right"]), f"{name}: {corners}"
        assert not is_red(corners["bottom-left"]), f"{name}: {corners}"

    metadata = json.loads(outputs["metadata"])
    assert metadata == job["metadata"]
    assert metadata["exif"]["IFD0"]["Make"] == CAMERA_MAKE
    assert metadata["exif"]["IFD0"]["Model"] == CAMERA_MODEL
    assert metadata["gps"]["latitude"] == pytest.approx(GPS_LATITUDE, abs=1e-5)
    assert metadata["gps"]["longitude"] == pytest.approx(GPS_LONGITUDE, abs=1e-5)
    assert metadata["orientation"] == 6

    archive = download(job["archive_url"])
    assert "attachment" in archive.headers["content-disposition"]
    assert_archive_holds(archive.content, outputs)


@pytest.mark.skipif(not ml_worker_available(), reason="pixtools_worker_ml not present")
def test_alpha_png_all_operations_with_webhook(
    platform: Platform, webhooks: WebhookReceiver
) -> None:
    image = build_alpha_png()
    operations = [*IMAGE_OPERATIONS, "denoise", "metadata"]
    webhook_url = f"{webhooks.url}/{platform.profile}"

    response = submit(platform, image, operations, webhook_url=webhook_url)
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    job = wait_for_job(platform, job_id)

    assert job["status"] == "COMPLETED", json.dumps(job)
    outputs = {
        name: download(operation["result_url"]).content
        for name, operation in operations_by_name(job).items()
    }
    top, bottom = (128, 32), (128, 200)

    for name in ("png", "webp", "avif"):
        output = open_output(outputs[name])
        assert output.size == ALPHA_SIZE, name
        assert "A" in output.getbands(), f"{name} lost its alpha channel"
        rgba = output.convert("RGBA")
        assert pixel(rgba, top)[3] <= 10, f"{name}: top half is not transparent"
        assert pixel(rgba, bottom)[3] >= 245, f"{name}: bottom half is not opaque"
        for actual, expected in zip(pixel(rgba, bottom)[:3], ALPHA_FILL, strict=True):
            assert abs(actual - expected) <= 40, f"{name}: {pixel(rgba, bottom)}"
        assert_no_exif(name, output, outputs[name])

    jpeg = open_output(outputs["jpg"])
    assert jpeg.mode == "RGB"
    assert all(channel >= 240 for channel in pixel(jpeg, top)), pixel(jpeg, top)
    for actual, expected in zip(pixel(jpeg, bottom), ALPHA_FILL, strict=True):
        assert abs(actual - expected) <= 30, pixel(jpeg, bottom)

    denoised = open_output(outputs["denoise"])
    assert denoised.size == ALPHA_SIZE
    assert_no_exif("denoise", denoised, outputs["denoise"])

    metadata = json.loads(outputs["metadata"])
    assert (metadata["format"], metadata["width"], metadata["height"]) == (
        "PNG",
        256,
        256,
    )
    assert metadata["has_alpha"] is True
    assert metadata["gps"] is None

    assert_archive_holds(download(job["archive_url"]).content, outputs)

    event = webhooks.wait_for(job_id, WEBHOOK_TIMEOUT_SECONDS)
    assert event is not None, f"no webhook for {job_id}\n{platform.logs()}"
    assert event.path == f"/hooks/pixtools/{platform.profile}"
    assert event.body["data"]["job_id"] == job_id
    assert event.body["data"]["status"] == "COMPLETED"
    assert event.headers["content-type"].startswith("application/json")


def test_concurrent_idempotent_requests_create_one_job(platform: Platform) -> None:
    image = build_alpha_png()
    key = str(uuid.uuid4())
    responses: list[httpx.Response] = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)

    def post() -> None:
        barrier.wait()
        response = submit(platform, image, ["metadata"], idempotency_key=key)
        with lock:
            responses.append(response)

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert [response.status_code for response in responses] == [202] * 4
    assert len({response.json()["job_id"] for response in responses}) == 1
    job = wait_for_job(platform, responses[0].json()["job_id"])
    assert job["status"] == "COMPLETED"


def test_invalid_upload_rejected_over_http(platform: Platform) -> None:
    pdf = SampleImage(
        "report.pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"
    )

    response = submit(platform, pdf, ["jpg"])

    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported-format"


def test_oversized_upload_rejected_over_http(platform: Platform) -> None:
    oversized = SampleImage(
        "huge.jpg", b"\xff\xd8\xff" + b"\x00" * (E2E_MAX_UPLOAD_BYTES + 1)
    )

    response = submit(platform, oversized, ["jpg"])

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "upload-too-large"


def test_oversized_chunked_upload_rejected_over_http(platform: Platform) -> None:
    # Without Content-Length the API can only count bytes while it reads them.
    boundary = "e2e-boundary"

    def body() -> Iterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            'filename="huge.jpg"\r\n\r\n'
        ).encode()
        yield b"\xff\xd8\xff"
        for _ in range(E2E_MAX_UPLOAD_BYTES // (1024 * 1024) + 2):
            yield b"\x00" * (1024 * 1024)
        yield f"\r\n--{boundary}--\r\n".encode()

    response = httpx.post(
        f"{platform.base_url}/api/process",
        content=body(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        timeout=60,
    )

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "upload-too-large"


def test_platform_stops_cleanly(platform: Platform) -> None:
    # Runs last for each profile: SIGTERM must end every process cleanly.
    exit_codes = platform.stop()

    assert set(exit_codes) == {service.name for service in platform.services}
    for name, code in exit_codes.items():
        assert code in CLEAN_EXIT_CODES, f"{name} exited with {code}\n{platform.logs()}"
