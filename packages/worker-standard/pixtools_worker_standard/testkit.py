"""Builders shared by the standard worker's tests: images, jobs, broker messages."""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass
from typing import Any

from PIL import Image

from pixtools_shared import jobs
from pixtools_shared.db.models import Job
from pixtools_shared.db.session import session_scope
from pixtools_shared.operations import parse_operation_request
from pixtools_shared.settings import Settings
from pixtools_shared.storage import get_storage, upload_key


def make_image(
    fmt: str = "PNG",
    size: tuple[int, int] = (64, 48),
    mode: str = "RGB",
    color: Any = (200, 40, 10),
) -> bytes:
    """Encode a solid image with Pillow."""
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, fmt)
    return buffer.getvalue()


def submit_job(
    settings: Settings,
    operations: list[str],
    data: bytes,
    *,
    params: dict[str, Any] | None = None,
    webhook_url: str | None = None,
    filename: str = "photo.png",
) -> str:
    """Store an upload and create its job, as the API does, without dispatching."""
    requests = parse_operation_request(
        json.dumps(operations), json.dumps(params) if params else None
    )
    with session_scope() as session:
        job = jobs.create_job(
            session,
            operations=requests,
            source=jobs.SourceInfo(filename, "PNG", 64, 48, len(data)),
            webhook_url=webhook_url,
            settings=settings,
        )
        job_id = job.id
    get_storage().put("uploads", upload_key(job_id), data, "image/png")
    return job_id


def load_job(job_id: str) -> Job:
    """Load a job and its operations, detached from the session."""
    with session_scope() as session:
        job = jobs.require_job(session, job_id)
        for operation in job.operations:
            session.expunge(operation)
        session.expunge(job)
        return job


@dataclass(frozen=True)
class SentTask:
    name: str
    args: list[Any]
    queue: str


def sent_tasks(settings: Settings) -> list[SentTask]:
    """Messages waiting in the filesystem broker folder, oldest first."""
    found = []
    for path in sorted(settings.broker_folder.iterdir()):
        payload = json.loads(path.read_text())
        args = json.loads(base64.b64decode(payload["body"]))[0]
        found.append(
            SentTask(payload["headers"]["task"], args, path.name.split(".")[-2])
        )
    return found


def clear_broker(settings: Settings) -> None:
    for path in settings.broker_folder.iterdir():
        path.unlink()


@dataclass
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that records POSTs and replies as scripted.

    ``responses`` lists the status codes to return in order; the last one repeats.
    A status of 0 makes the server wait ``delay_seconds`` and then return 200.
    """

    def __init__(self, responses: list[int], delay_seconds: float = 0.0) -> None:
        import http.server
        import threading

        self.responses = list(responses)
        self.delay_seconds = delay_seconds
        self.requests: list[ReceivedRequest] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                receiver.requests.append(
                    ReceivedRequest(self.path, dict(self.headers.items()), body)
                )
                index = min(len(receiver.requests), len(receiver.responses)) - 1
                status = receiver.responses[index]
                if status == 0:
                    import time

                    time.sleep(receiver.delay_seconds)
                    status = 200
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hook?token=abc"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
