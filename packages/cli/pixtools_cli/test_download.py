"""Tests of result downloads: file names, collisions, atomic writes, retries."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pixtools_cli.client import PixToolsClient, RetryPolicy
from pixtools_cli.download import (
    DownloadPlan,
    download_job,
    items_of_job,
    name_from_url,
    parse_content_disposition,
    safe_filename,
)

API_URL = "http://127.0.0.1:8000"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('attachment; filename="photo-jpg.jpg"', "photo-jpg.jpg"),
        ("attachment; filename=photo-webp.webp", "photo-webp.webp"),
        (
            "attachment; filename=\"x.jpg\"; filename*=UTF-8''f%C3%B6to-jpg.jpg",
            "föto-jpg.jpg",
        ),
        ('attachment; filename="say \\"hi\\".png"', 'say "hi".png'),
        ("attachment", None),
        (None, None),
    ],
)
def test_parse_content_disposition(header: str | None, expected: str | None) -> None:
    assert parse_content_disposition(header) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("photo-jpg.jpg", "photo-jpg.jpg"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("..", "fallback"),
        ("", "fallback"),
        (None, "fallback"),
        ("bad\x00name\x1b.png", "bad_name_.png"),
        ("a" * 200 + ".webp", "a" * 115 + ".webp"),
    ],
)
def test_safe_filename(name: str | None, expected: str) -> None:
    assert safe_filename(name, "fallback") == expected


def test_name_from_signed_url() -> None:
    url = (
        "http://h/api/files/outputs/j/jpg.jpg?expires=1&filename=p-jpg.jpg&signature=s"
    )

    assert name_from_url(url) == "p-jpg.jpg"
    assert name_from_url("http://h/file") is None


def test_plan_prefixes_repeated_names(tmp_path: Path) -> None:
    plan = DownloadPlan(tmp_path)

    assert plan.claim("photo-jpg.jpg", "1234567890") == "photo-jpg.jpg"
    assert plan.claim("photo-jpg.jpg", "abcdef0123") == "abcdef01-photo-jpg.jpg"


def finished_job(job_id: str) -> dict[str, object]:
    return {
        "job_id": job_id,
        "status": "COMPLETED_WITH_ERRORS",
        "operations": [
            {"name": "jpg", "result_url": f"/api/files/outputs/{job_id}/jpg.jpg"},
            {"name": "avif", "result_url": None},
            {"name": "webp", "result_url": f"{API_URL}/api/files/{job_id}/webp"},
        ],
        "archive_url": f"/api/files/bundles/{job_id}.zip",
    }


def test_items_of_job_skip_missing_results() -> None:
    items = items_of_job(finished_job("j1"), include_archive=True)

    assert [item.kind for item in items] == ["jpg", "webp", "archive"]
    without_archive = items_of_job(finished_job("j1"), include_archive=False)
    assert [item.kind for item in without_archive] == ["jpg", "webp"]


class FlakyBody(httpx.SyncByteStream):
    """A body that breaks off after its first chunk."""

    def __iter__(self) -> Iterator[bytes]:
        yield b"partial"
        raise httpx.ReadError("connection reset")


def test_download_job_writes_named_files(tmp_path: Path) -> None:
    attempts: dict[str, int] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        attempts[path] = attempts.get(path, 0) + 1
        names = {
            "/api/files/outputs/j1/jpg.jpg": 'attachment; filename="holiday-jpg.jpg"',
            "/api/files/j1/webp": 'attachment; filename="holiday-webp.webp"',
            "/api/files/bundles/j1.zip": 'attachment; filename="holiday-results.zip"',
        }
        headers = {"Content-Disposition": names[path]}
        if path.endswith("/webp") and attempts[path] == 1:
            return httpx.Response(200, stream=FlakyBody(), headers=headers)
        return httpx.Response(200, content=f"body of {path}".encode(), headers=headers)

    client = PixToolsClient(
        API_URL,
        retry=RetryPolicy(attempts=3, backoff_seconds=0.01),
        transport=httpx.MockTransport(handler),
        sleep=lambda _seconds: None,
    )
    out = tmp_path / "out"
    with client:
        paths = download_job(client, finished_job("j1"), DownloadPlan(out))

    assert [path.name for path in paths] == [
        "holiday-jpg.jpg",
        "holiday-webp.webp",
        "holiday-results.zip",
    ]
    assert (out / "holiday-webp.webp").read_bytes() == b"body of /api/files/j1/webp"
    assert attempts["/api/files/j1/webp"] == 2
    # The broken first attempt left no partial file behind.
    assert sorted(path.name for path in out.iterdir()) == sorted(
        path.name for path in paths
    )
