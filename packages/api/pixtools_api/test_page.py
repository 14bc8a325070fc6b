"""Tests of the upload page and its static files."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from pixtools_api.conftest import build_settings
from pixtools_api.routes.page import (
    STATIC_FILES,
    build_content_security_policy,
    result_image_origins,
)


def test_page_served_with_csp(client: TestClient) -> None:
    response = client.get("/")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert '<script type="module" src="/static/app.js">' in response.text
    assert 'id="process-form"' in response.text


def test_page_script_served(client: TestClient) -> None:
    response = client.get("/static/app.js")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert "crypto.randomUUID()" in response.text
    assert '"/api/process"' in response.text


def test_page_style_served(client: TestClient) -> None:
    response = client.get("/static/style.css")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")


def test_page_unknown_static_file(client: TestClient) -> None:
    response = client.get("/static/index.html")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not-found"


def test_page_csp_allows_filesystem_download_origin(client: TestClient) -> None:
    response = client.get("/")

    policy = response.headers["content-security-policy"]
    assert "img-src 'self' data: blob: http://testserver;" in policy


def test_csp_allows_s3_endpoint_origins(tmp_path: Path) -> None:
    settings = build_settings(
        tmp_path,
        STORAGE_BACKEND="s3",
        S3_ENDPOINT_URL="http://minio.internal:9000",
        S3_PUBLIC_ENDPOINT_URL="https://files.example.com",
        S3_BUCKET_OUTPUTS="results",
    )

    assert result_image_origins(settings) == [
        "https://files.example.com",
        "https://results.files.example.com",
    ]


def test_csp_allows_aws_bucket_origins(tmp_path: Path) -> None:
    settings = build_settings(
        tmp_path,
        STORAGE_BACKEND="s3",
        S3_ENDPOINT_URL=None,
        S3_REGION="eu-west-3",
        S3_BUCKET_OUTPUTS="results",
    )

    policy = build_content_security_policy(settings)

    assert "https://results.s3.eu-west-3.amazonaws.com" in policy
    assert "https://results.s3.amazonaws.com" in policy
    assert "https://s3.eu-west-3.amazonaws.com" in policy
    assert "default-src 'self'" in policy


def test_static_files_listed_from_folder() -> None:
    assert STATIC_FILES["app.js"] == "text/javascript; charset=utf-8"
    assert STATIC_FILES["style.css"] == "text/css; charset=utf-8"
    assert "index.html" not in STATIC_FILES
    assert "BUILD" not in STATIC_FILES
