"""Tests of signed filesystem downloads at /api/files."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from fastapi.testclient import TestClient

from pixtools_api.services import ApiServices
from pixtools_shared.storage.signing import build_signed_url

JOB_ID = "0b7c3a58-7f3e-4a55-9d7e-3c1f0e2d4a6b"


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def test_download_serves_file_with_disposition(
    client: TestClient, services: ApiServices
) -> None:
    services.storage.put("outputs", f"{JOB_ID}/jpg.jpg", b"jpeg bytes", "image/jpeg")
    url = services.storage.download_url("outputs", f"{JOB_ID}/jpg.jpg", "photo.jpg")

    response = client.get(path_of(url))

    assert response.status_code == 200
    assert response.content == b"jpeg bytes"
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["content-disposition"] == 'attachment; filename="photo.jpg"'
    assert response.headers["x-content-type-options"] == "nosniff"


def test_download_non_ascii_filename(client: TestClient, services: ApiServices) -> None:
    services.storage.put("bundles", f"{JOB_ID}.zip", b"PK zip", "application/zip")
    url = services.storage.download_url("bundles", f"{JOB_ID}.zip", "fête été.zip")

    response = client.get(path_of(url))

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"] == (
        'attachment; filename="f_te__t_.zip"; '
        "filename*=UTF-8''f%C3%AAte%20%C3%A9t%C3%A9.zip"
    )


def test_download_rejects_changed_filename(
    client: TestClient, services: ApiServices
) -> None:
    services.storage.put("outputs", f"{JOB_ID}/png.png", b"png", "image/png")
    url = services.storage.download_url("outputs", f"{JOB_ID}/png.png", "a.png")

    response = client.get(path_of(url).replace("filename=a.png", "filename=evil.html"))

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "invalid-download-link"


def test_download_rejects_expired_link(
    client: TestClient, services: ApiServices
) -> None:
    services.storage.put("outputs", f"{JOB_ID}/png.png", b"png", "image/png")
    settings = services.settings
    url = build_signed_url(
        settings.SIGNING_SECRET,
        settings.PUBLIC_BASE_URL,
        "outputs",
        f"{JOB_ID}/png.png",
        "a.png",
        expires_in=60,
        now=1_000_000,
    )

    response = client.get(path_of(url))

    assert response.status_code == 410
    assert response.json()["error"]["code"] == "download-link-expired"


def test_download_refuses_uploads_area(
    client: TestClient, services: ApiServices
) -> None:
    services.storage.put("uploads", f"{JOB_ID}/source", b"src", "image/png")
    url = services.storage.download_url("uploads", f"{JOB_ID}/source", "source.png")

    response = client.get(path_of(url))

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "file-not-found"


def test_download_missing_file(client: TestClient, services: ApiServices) -> None:
    url = services.storage.download_url("outputs", f"{JOB_ID}/gone.png", "gone.png")
    query = parse_qs(urlsplit(url).query)
    assert query["filename"] == ["gone.png"]

    response = client.get(path_of(url))

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "file-not-found"
