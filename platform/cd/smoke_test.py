"""Smoke test of a deployed stack: health, then one real job end to end.

Uploads a small PNG made in memory, requests a JPEG conversion and the metadata,
polls the job until it is final and downloads the JPEG result. Standard library
only, so CD can run it with any Python 3.11.

Usage:
    python platform/cd/smoke_test.py --api-url URL [--api-key-header NAME]
The API key is read from the SMOKE_API_KEY environment variable.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import time
import urllib.error
import urllib.request
import uuid
import zlib
from typing import Any

FINAL_STATUSES = {"COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "EXPIRED"}


def make_png(width: int = 64, height: int = 48) -> bytes:
    """Return an RGB gradient PNG encoded with zlib alone."""
    raw = bytearray()
    for y in range(height):
        raw.append(0)
        for x in range(width):
            raw.extend((x * 4 % 256, y * 5 % 256, 128))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(raw)))
        + chunk(b"IEND", b"")
    )


def multipart(
    fields: dict[str, str], file_field: str, filename: str, data: bytes
) -> tuple[bytes, str]:
    """Encode form fields and one file as multipart/form-data."""
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
            f"{value}\r\n".encode()
        )
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; '
        f'filename="{filename}"\r\nContent-Type: image/png\r\n\r\n'.encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def request(
    url: str,
    headers: dict[str, str],
    *,
    data: bytes | None = None,
    content_type: str | None = None,
) -> tuple[int, bytes]:
    """Send one request and return (status, body); HTTP errors are returned too."""
    all_headers = dict(headers)
    if content_type:
        all_headers["Content-Type"] = content_type
    req = urllib.request.Request(url, data=data, headers=all_headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_for_health(api_url: str, deadline: float) -> None:
    """Poll /api/health until it returns 200 or the deadline passes."""
    while True:
        try:
            status, body = request(f"{api_url}/api/health", {})
            if status == 200:
                print(f"health: {body.decode(errors='replace')}")
                return
            print(f"health: HTTP {status}, retrying")
        except (urllib.error.URLError, TimeoutError) as error:
            print(f"health: {error}, retrying")
        if time.monotonic() > deadline:
            raise SystemExit("smoke test failed: /api/health never answered 200")
        time.sleep(10)


def run_job(api_url: str, headers: dict[str, str], deadline: float) -> dict[str, Any]:
    """Submit a jpg + metadata job and return its final representation."""
    body, content_type = multipart(
        {"operations": json.dumps(["jpg", "metadata"])}, "file", "smoke.png", make_png()
    )
    status, answer = request(
        f"{api_url}/api/process", headers, data=body, content_type=content_type
    )
    if status not in (200, 201, 202):
        raise SystemExit(
            f"smoke test failed: job submission returned HTTP {status}: "
            f"{answer[:500]!r}"
        )
    job_id = json.loads(answer)["job_id"]
    print(f"job {job_id} submitted")

    while time.monotonic() < deadline:
        status, answer = request(f"{api_url}/api/jobs/{job_id}", headers)
        if status != 200:
            raise SystemExit(f"smoke test failed: GET job returned HTTP {status}")
        job = json.loads(answer)
        if job["status"] in FINAL_STATUSES:
            return job
        time.sleep(3)
    raise SystemExit(f"smoke test failed: job {job_id} not final before the deadline")


def main() -> int:
    parser = argparse.ArgumentParser(description="Smoke test a deployed PixTools API.")
    parser.add_argument("--api-url", required=True, help="base URL, e.g. http://host")
    parser.add_argument(
        "--api-key-header", default="X-API-Key", help="header that carries the API key"
    )
    parser.add_argument(
        "--timeout",
        type=int,
        default=600,
        help="seconds for health and the job together",
    )
    options = parser.parse_args()

    api_key = os.environ.get("SMOKE_API_KEY", "")
    if not api_key:
        print("SMOKE_API_KEY is not set", file=sys.stderr)
        return 2
    api_url = options.api_url.rstrip("/")
    deadline = time.monotonic() + options.timeout
    headers = {options.api_key_header: api_key}

    wait_for_health(api_url, deadline)
    job = run_job(api_url, headers, deadline)
    print(f"job finished: {job['status']}")
    if job["status"] != "COMPLETED":
        raise SystemExit(
            f"smoke test failed: job ended {job['status']}: {job.get('error_message')}"
        )

    jpg_url = job["result_urls"]["jpg"]
    if jpg_url.startswith("/"):
        jpg_url = api_url + jpg_url
    status, data = request(jpg_url, {})
    if status != 200 or not data.startswith(b"\xff\xd8"):
        raise SystemExit(f"smoke test failed: JPEG download returned HTTP {status}")
    if not job.get("metadata"):
        raise SystemExit("smoke test failed: job has no metadata")
    print(f"smoke test passed: {len(data)} byte JPEG")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
