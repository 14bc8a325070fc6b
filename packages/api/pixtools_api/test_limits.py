"""Tests of GET /api/limits."""

from __future__ import annotations

from fastapi.testclient import TestClient

from pixtools_api.conftest import TEST_MAX_IMAGE_PIXELS, TEST_MAX_UPLOAD_BYTES


def test_limits_publish_settings_and_operations(client: TestClient) -> None:
    response = client.get("/api/limits")

    assert response.status_code == 200
    body = response.json()
    assert body["max_upload_bytes"] == TEST_MAX_UPLOAD_BYTES
    assert body["max_image_pixels"] == TEST_MAX_IMAGE_PIXELS
    assert body["max_image_side"] == 20_000
    operations = {entry["name"]: entry for entry in body["operations"]}
    assert list(operations) == ["jpg", "png", "webp", "avif", "denoise", "metadata"]
    assert operations["denoise"]["queue"] == "ml"
    assert operations["jpg"]["queue"] == "standard"
    jpg_schema = operations["jpg"]["params_schema"]
    assert jpg_schema["properties"]["quality"]["minimum"] == 1
    assert jpg_schema["properties"]["quality"]["maximum"] == 100
    assert jpg_schema["additionalProperties"] is False
    assert "quality" not in operations["png"]["params_schema"]["properties"]
    assert operations["metadata"]["params_schema"].get("properties", {}) == {}


def test_limits_publish_input_formats(client: TestClient) -> None:
    body = client.get("/api/limits").json()

    formats = {entry["format"]: entry for entry in body["input_formats"]}
    assert list(formats) == ["JPEG", "PNG", "WEBP", "AVIF", "GIF", "TIFF"]
    assert formats["JPEG"] == {
        "format": "JPEG",
        "content_types": ["image/jpeg"],
        "extensions": ["jpg", "jpeg", "jpe"],
    }
    assert formats["TIFF"]["extensions"] == ["tif", "tiff"]
