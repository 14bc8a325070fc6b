"""Locust users that submit small images to POST /api/process as fast as they can.

bench/bench_ingest.py starts Locust with this file and reads its output. Settings
come from environment variables:

- BENCH_IMAGE_PATH: the image file to upload (JPEG).
- BENCH_OPERATIONS: JSON list of operations (default ["webp"]).
- BENCH_RECORDS_PATH: JSON-lines file that gets one record per request.
- BENCH_MAX_REQUESTS: Locust stops after this many requests in total.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from locust import FastHttpUser, events, task

IMAGE_PATH = os.environ.get("BENCH_IMAGE_PATH", "")
OPERATIONS = os.environ.get("BENCH_OPERATIONS", '["webp"]')
RECORDS_PATH = os.environ.get("BENCH_RECORDS_PATH", "")
MAX_REQUESTS = int(os.environ.get("BENCH_MAX_REQUESTS", "1000"))

BOUNDARY = f"bench-{uuid.uuid4().hex}"

_records: list[dict[str, Any]] = []


def multipart_body(image: bytes, operations: str) -> bytes:
    """Build a multipart/form-data body with the image and the operations field."""
    parts = [
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="operations"\r\n\r\n'
        f"{operations}\r\n".encode(),
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="small.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n".encode()
        + image
        + b"\r\n",
        f"--{BOUNDARY}--\r\n".encode(),
    ]
    return b"".join(parts)


BODY = multipart_body(Path(IMAGE_PATH).read_bytes(), OPERATIONS) if IMAGE_PATH else b""
HEADERS = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


class IngestUser(FastHttpUser):
    """Posts the same small image in a loop, with no wait between requests."""

    @task
    def submit(self) -> None:
        if len(_records) >= MAX_REQUESTS:
            if self.environment.runner is not None:
                self.environment.runner.quit()
            return
        sent_at = time.time()
        start = time.perf_counter()
        with self.client.post(
            "/api/process",
            # geventhttpclient sends bytes unchanged; locust's annotation lists
            # only str and dict.
            data=BODY,  # type: ignore[arg-type]
            headers=HEADERS,
            catch_response=True,
        ) as response:
            latency_ms = (time.perf_counter() - start) * 1000
            job_id = None
            if response.status_code == 202:
                job_id = response.json().get("job_id")
                response.success()
            else:
                response.failure(f"status {response.status_code}")
            _records.append(
                {
                    "sent_at": sent_at,
                    "latency_ms": round(latency_ms, 3),
                    "status_code": response.status_code,
                    "job_id": job_id,
                }
            )


@events.quitting.add_listener
def write_records(**_kwargs: Any) -> None:
    if not RECORDS_PATH:
        return
    lines = [json.dumps(record) + "\n" for record in _records]
    Path(RECORDS_PATH).write_text("".join(lines), encoding="utf-8")
