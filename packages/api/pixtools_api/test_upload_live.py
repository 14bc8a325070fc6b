"""Upload limits on a real uvicorn process: 413 with flat memory, 408, auth first.

Memory is read from /proc/<pid>/status of the server: VmHWM, the peak resident
size, must grow by far less than the upload, which is ten times the limit.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator

import httpx
import pytest

from pixtools_api.auth import hash_api_key
from pixtools_api.conftest import image_bytes
from pixtools_api.live_server import LiveServer, running_api_server
from pixtools_api.raw_http import (
    multipart_parts,
    repeated_chunks,
    send_request,
    slow_chunks,
)
from pixtools_api.test_process import png_pixel_bomb

MIB = 1024 * 1024
LIMIT = 4 * MIB
UPLOAD = 10 * LIMIT
# Peak memory may grow by the part buffer (up to LIMIT) plus parser and
# socket overhead; a buffered upload would add UPLOAD or more.
MAX_PEAK_GROWTH_KIB = (LIMIT + 8 * MIB) // 1024
API_KEY = "live-test-key-0123456789abcdef"
BOUNDARY = "live-boundary"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    environment = {
        "MAX_UPLOAD_BYTES": str(LIMIT),
        "MAX_IMAGE_PIXELS": "4000000",
        "UPLOAD_READ_TIMEOUT_SECONDS": "1.5",
        "API_KEYS": f"tester:{hash_api_key(API_KEY)}",
    }
    with running_api_server(tmp_path_factory.mktemp("live"), environment) as live:
        # Warm the upload path, so first-use imports do not count as growth.
        response = httpx.post(
            f"{live.base_url}/api/process",
            headers={"X-API-Key": API_KEY},
            files={"file": ("warm.png", image_bytes(), "image/png")},
            data={"operations": '["jpg"]'},
            timeout=30,
        )
        assert response.status_code == 202, response.text
        yield live


def port_of(server: LiveServer) -> int:
    return int(server.base_url.rsplit(":", 1)[1])


def upload_headers(
    length: int | None = None, key: str | None = API_KEY
) -> dict[str, str]:
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    if key is not None:
        headers["X-API-Key"] = key
    if length is not None:
        headers["Content-Length"] = str(length)
    return headers


def oversized_body() -> list[bytes]:
    return list(
        multipart_parts(
            BOUNDARY, {"operations": '["jpg"]'}, "big.png", repeated_chunks(UPLOAD)
        )
    )


def count_rows(server: LiveServer, table: str) -> int:
    database = server.log_path.parent / "api-data" / "pixtools.db"
    with sqlite3.connect(database) as connection:
        return int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608


def stored_uploads(server: LiveServer) -> list[str]:
    root = server.log_path.parent / "api-data" / "storage" / "uploads"
    return sorted(path.parent.name for path in root.rglob("source"))


def test_oversized_chunked_upload_rejected_with_flat_memory(server: LiveServer) -> None:
    peak_before = server.peak_rss_kib()

    response = send_request(
        port_of(server),
        "POST",
        "/api/process",
        upload_headers(),
        oversized_body(),
        chunked=True,
    )

    growth = server.peak_rss_kib() - peak_before
    assert response.status == 413
    assert json.loads(response.body)["error"]["code"] == "upload-too-large"
    assert growth < MAX_PEAK_GROWTH_KIB, f"peak RSS grew by {growth} KiB"
    assert response.headers["connection"] == "close"
    # The server closed the connection instead of draining the rest.
    assert response.bytes_sent < UPLOAD


def test_oversized_content_length_rejected_before_body(server: LiveServer) -> None:
    body = oversized_body()
    peak_before = server.peak_rss_kib()

    response = send_request(
        port_of(server),
        "POST",
        "/api/process",
        upload_headers(sum(len(part) for part in body)),
        body,
    )

    growth = server.peak_rss_kib() - peak_before
    error = json.loads(response.body)["error"]
    assert response.status == 413
    assert error["code"] == "upload-too-large"
    assert error["message"].startswith("The request body of")
    assert growth < MAX_PEAK_GROWTH_KIB, f"peak RSS grew by {growth} KiB"
    assert response.bytes_sent < UPLOAD


def test_missing_key_rejected_before_body(server: LiveServer) -> None:
    body = oversized_body()

    response = send_request(
        port_of(server),
        "POST",
        "/api/process",
        upload_headers(sum(len(part) for part in body), key=None),
        body,
    )

    assert response.status == 401
    assert json.loads(response.body)["error"]["code"] == "api-key-required"
    assert response.headers["connection"] == "close"
    assert response.bytes_sent < UPLOAD


def test_pixel_bomb_rejected_before_queueing(server: LiveServer) -> None:
    jobs_before = count_rows(server, "jobs")
    outbox_before = count_rows(server, "outbox_messages")
    uploads_before = stored_uploads(server)

    response = httpx.post(
        f"{server.base_url}/api/process",
        headers={"X-API-Key": API_KEY},
        files={"file": ("bomb.png", png_pixel_bomb(60_000, 60_000), "image/png")},
        data={"operations": '["jpg"]'},
        timeout=30,
    )

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "image-too-large"
    assert count_rows(server, "jobs") == jobs_before
    assert count_rows(server, "outbox_messages") == outbox_before
    assert stored_uploads(server) == uploads_before


def test_trickling_upload_cut_off(server: LiveServer) -> None:
    pieces = multipart_parts(
        BOUNDARY, {"operations": '["jpg"]'}, "slow.png", repeated_chunks(2000, 100)
    )

    response = send_request(
        port_of(server),
        "POST",
        "/api/process",
        upload_headers(),
        slow_chunks(pieces, interval=0.3),
        chunked=True,
    )

    assert response.status == 408
    assert json.loads(response.body)["error"]["code"] == "upload-timed-out"
    assert response.headers["connection"] == "close"
    assert 1.4 <= response.seconds < 4.0


def test_live_upload_file_name_cleaned(server: LiveServer) -> None:
    data = image_bytes()
    body = multipart_parts(
        BOUNDARY,
        {"operations": '["png"]'},
        "..\\..\\dir/evil\x07\u202ename.png",
        [data],
    )

    response = send_request(
        port_of(server),
        "POST",
        "/api/process",
        {**upload_headers(key=None), "Authorization": f"Bearer {API_KEY}"},
        body,
        chunked=True,
    )

    assert response.status == 202, response.body
    status_url = json.loads(response.body)["status_url"]
    job = httpx.get(status_url, headers={"X-API-Key": API_KEY}, timeout=10).json()
    assert job["source"]["filename"] == "evilname.png"
    assert job["source"]["size_bytes"] == len(data)
