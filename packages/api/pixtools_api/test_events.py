"""Tests of GET /api/jobs/{job_id}/events, the server-sent events stream."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient

from pixtools_api.conftest import image_bytes
from pixtools_api.routes.events import (
    EventStreamConfig,
    StreamSlots,
    change_fingerprint,
    format_event,
)
from pixtools_api.services import ApiServices
from pixtools_shared.jobs import (
    OperationOutput,
    claim_finalization,
    complete_job,
    mark_operation_running,
    mark_operation_succeeded,
)

FAST_CONFIG = EventStreamConfig(
    poll_interval_seconds=0.05,
    heartbeat_seconds=0.2,
    max_stream_seconds=5.0,
    retry_milliseconds=1500,
    max_streams=4,
)


@dataclass
class ParsedStream:
    """The events, comments and retry hints of one event stream body."""

    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    retry: list[int] = field(default_factory=list)

    def names(self) -> list[str]:
        return [name for name, _data in self.events]


def parse_stream(body: str) -> ParsedStream:
    parsed = ParsedStream()
    for block in body.split("\n\n"):
        if not block:
            continue
        name = "message"
        data_lines: list[str] = []
        for line in block.split("\n"):
            if line.startswith(":"):
                parsed.comments.append(line[1:].strip())
            elif line.startswith("retry: "):
                parsed.retry.append(int(line.removeprefix("retry: ")))
            elif line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data_lines.append(line.removeprefix("data: "))
        if data_lines:
            parsed.events.append((name, json.loads("\n".join(data_lines))))
    return parsed


def submit_job(client: TestClient, operations: list[str]) -> str:
    response = client.post(
        "/api/process",
        files={"file": ("photo.png", image_bytes("PNG", (32, 24)), "image/png")},
        data={"operations": json.dumps(operations)},
    )
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    return job_id


def finish_job(
    services: ApiServices, job_id: str, operation: str, delay: float = 0.0
) -> None:
    """Run the operation through the job service the way a worker does."""
    time.sleep(delay)
    key = f"{job_id}/{operation}.jpg"
    services.storage.put("outputs", key, b"\xff\xd8result", "image/jpeg")
    with services.session_factory() as session:
        mark_operation_running(session, job_id, operation)
        session.commit()
    time.sleep(0.2)
    with services.session_factory() as session:
        output = OperationOutput(key, "image/jpeg", "jpg", 8, 32, 24)
        mark_operation_succeeded(session, job_id, operation, output)
        session.commit()
    with services.session_factory() as session:
        assert claim_finalization(session, job_id)
        complete_job(session, job_id, archive_key=None, archive_size_bytes=None)
        session.commit()


def read_stream(client: TestClient, job_id: str) -> tuple[int, str, str]:
    with client.stream("GET", f"/api/jobs/{job_id}/events") as response:
        body = "".join(response.iter_text())
        return response.status_code, response.headers["content-type"], body


def test_events_unknown_job_404(client: TestClient) -> None:
    response = client.get("/api/jobs/00000000-0000-4000-8000-000000000000/events")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "job-not-found"


def test_events_overlong_id_404(client: TestClient) -> None:
    response = client.get(f"/api/jobs/{'a' * 100}/events")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "job-not-found"


def test_events_follow_job_to_end(client: TestClient, services: ApiServices) -> None:
    client.app.state.event_stream_config = FAST_CONFIG  # type: ignore[attr-defined]
    job_id = submit_job(client, ["jpg"])
    # The delay lets the stream send the QUEUED job before the worker starts.
    worker = threading.Thread(
        target=finish_job, args=(services, job_id, "jpg"), kwargs={"delay": 0.4}
    )

    worker.start()
    status, content_type, body = read_stream(client, job_id)
    worker.join()

    assert status == 200
    assert content_type.startswith("text/event-stream")
    parsed = parse_stream(body)
    assert parsed.retry == [1500]
    names = parsed.names()
    assert names[-1] == "end"
    assert names.count("end") == 1
    job_events = [data for name, data in parsed.events if name == "job"]
    statuses = [event["operations"][0]["status"] for event in job_events]
    assert statuses[0] == "QUEUED"
    assert "RUNNING" in statuses
    assert statuses[-1] == "SUCCEEDED"
    assert job_events[-1]["status"] == "COMPLETED"
    assert job_events[-1]["result_urls"]["jpg"].startswith("http://testserver/")
    assert parsed.events[-1][1] == {"job_id": job_id, "status": "COMPLETED"}


def test_events_final_job_ends_at_once(
    client: TestClient, services: ApiServices
) -> None:
    client.app.state.event_stream_config = FAST_CONFIG  # type: ignore[attr-defined]
    job_id = submit_job(client, ["jpg"])
    finish_job(services, job_id, "jpg")

    status, _content_type, body = read_stream(client, job_id)

    assert status == 200
    parsed = parse_stream(body)
    assert parsed.names() == ["job", "end"]
    assert parsed.events[0][1]["status"] == "COMPLETED"


def test_events_unchanged_job_sends_heartbeats(client: TestClient) -> None:
    client.app.state.event_stream_config = EventStreamConfig(  # type: ignore[attr-defined]
        poll_interval_seconds=0.05,
        heartbeat_seconds=0.2,
        max_stream_seconds=1.0,
        retry_milliseconds=500,
        max_streams=4,
    )
    job_id = submit_job(client, ["webp"])

    started = time.monotonic()
    status, _content_type, body = read_stream(client, job_id)
    elapsed = time.monotonic() - started

    assert status == 200
    parsed = parse_stream(body)
    # Signed URLs change on every read, but an unchanged job sends one event.
    assert parsed.names() == ["job"]
    assert parsed.comments.count("heartbeat") >= 3
    assert 0.9 <= elapsed < 4.0


def test_events_reject_when_streams_full(client: TestClient) -> None:
    client.app.state.event_stream_config = FAST_CONFIG  # type: ignore[attr-defined]
    slots = StreamSlots(limit=1)
    assert slots.try_acquire()
    client.app.state.event_stream_slots = slots  # type: ignore[attr-defined]
    job_id = submit_job(client, ["jpg"])

    response = client.get(f"/api/jobs/{job_id}/events")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "too-many-event-streams"
    assert response.headers["retry-after"] == "5"
    assert slots.open == 1


def test_events_release_slot_after_stream(
    client: TestClient, services: ApiServices
) -> None:
    client.app.state.event_stream_config = FAST_CONFIG  # type: ignore[attr-defined]
    job_id = submit_job(client, ["jpg"])
    finish_job(services, job_id, "jpg")

    for _ in range(6):
        status, _content_type, _body = read_stream(client, job_id)
        assert status == 200

    slots = client.app.state.event_stream_slots  # type: ignore[attr-defined]
    assert slots.open == 0


def test_format_event_single_data_line() -> None:
    text = format_event("job", {"message": "line one\nline two"})

    assert text == 'event: job\ndata: {"message":"line one\\nline two"}\n\n'


def test_change_fingerprint_ignores_urls() -> None:
    first = {
        "status": "COMPLETED",
        "archive_url": "http://a/zip?expires=1",
        "result_urls": {"jpg": "http://a/jpg?expires=1"},
        "operations": [{"name": "jpg", "result_url": "http://a/jpg?expires=1"}],
    }
    second = {
        "status": "COMPLETED",
        "archive_url": "http://a/zip?expires=2",
        "result_urls": {"jpg": "http://a/jpg?expires=2"},
        "operations": [{"name": "jpg", "result_url": "http://a/jpg?expires=2"}],
    }
    without_archive = {**second, "archive_url": None}

    assert change_fingerprint(first) == change_fingerprint(second)
    assert change_fingerprint(first) != change_fingerprint(without_archive)
