"""GET /api/jobs/{job_id}/events: the job resource as a server-sent events stream.

The stream starts with a ``retry:`` hint and one ``job`` event holding the full
job resource (the body of GET /api/jobs/{job_id}). The route then reads the job
from the database every EVENTS_POLL_INTERVAL_SECONDS and sends a new ``job``
event whenever it changed. While nothing changes it sends a comment line every
EVENTS_HEARTBEAT_SECONDS, so proxies keep the connection open. When the job is
final the stream sends ``event: end`` with ``{"job_id", "status"}`` and closes.

A stream lasts at most EVENTS_MAX_STREAM_SECONDS. It then closes without
``end``: an EventSource reconnects after the retry hint and receives the current
job first, so no change is lost. Each API process serves at most
EVENTS_MAX_STREAMS streams at once, because each one polls the database. Further
requests get 503 ``too-many-event-streams``, and clients poll GET
/api/jobs/{job_id} instead.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from pixtools_api.dependencies import ServicesDep
from pixtools_api.routes.jobs import MAX_JOB_ID_LENGTH, load_job_resource
from pixtools_api.schemas import ERROR_RESPONSES
from pixtools_api.services import ApiServices
from pixtools_shared.db.models import FINAL_JOB_STATUSES
from pixtools_shared.errors import JobNotFoundError, PixToolsError
from pixtools_shared.settings import Settings

logger = structlog.get_logger(__name__)

router = APIRouter(prefix="/api", tags=["jobs"])

EVENT_STREAM_MEDIA_TYPE = "text/event-stream"

# Fields of the job resource whose values change on every read (download links
# are signed with a fresh expiry), so they are left out of change detection.
URL_FIELDS = ("result_urls", "archive_url")
OPERATION_URL_FIELDS = ("result_url",)


@dataclass(frozen=True)
class EventStreamConfig:
    """Timing and capacity of the event streams of one API process."""

    poll_interval_seconds: float = 0.5
    heartbeat_seconds: float = 15.0
    max_stream_seconds: float = 300.0
    retry_milliseconds: int = 3000
    max_streams: int = 200

    @classmethod
    def from_settings(cls, settings: Settings) -> EventStreamConfig:
        """Read the EVENTS_* settings, with the class defaults for missing ones."""
        defaults = cls()
        return cls(
            poll_interval_seconds=float(
                getattr(
                    settings,
                    "EVENTS_POLL_INTERVAL_SECONDS",
                    defaults.poll_interval_seconds,
                )
            ),
            heartbeat_seconds=float(
                getattr(
                    settings, "EVENTS_HEARTBEAT_SECONDS", defaults.heartbeat_seconds
                )
            ),
            max_stream_seconds=float(
                getattr(
                    settings, "EVENTS_MAX_STREAM_SECONDS", defaults.max_stream_seconds
                )
            ),
            retry_milliseconds=int(
                getattr(
                    settings, "EVENTS_RETRY_MILLISECONDS", defaults.retry_milliseconds
                )
            ),
            max_streams=int(
                getattr(settings, "EVENTS_MAX_STREAMS", defaults.max_streams)
            ),
        )


class TooManyEventStreamsError(PixToolsError):
    """The API process already serves EVENTS_MAX_STREAMS event streams."""

    code = "too-many-event-streams"
    http_status = 503
    default_message = (
        "Too many job event streams are open; poll GET /api/jobs/{job_id} instead."
    )


class StreamSlots:
    """Count of the open event streams of one app.

    Only the event loop thread touches the count, so it needs no lock.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0

    def try_acquire(self) -> bool:
        if self.open >= self.limit:
            return False
        self.open += 1
        return True

    def release(self) -> None:
        self.open = max(0, self.open - 1)


class EventStreamResponse(StreamingResponse):
    """A streaming response that frees its stream slot however the response ends.

    Releasing in the body generator alone would leak the slot when the client
    disconnects before the first chunk, because an async generator that never
    started does not run its ``finally`` block.
    """

    def __init__(
        self, content: AsyncIterator[str], release: Callable[[], None]
    ) -> None:
        super().__init__(
            content,
            media_type=EVENT_STREAM_MEDIA_TYPE,
            headers={
                "Cache-Control": "no-store",
                # Tells nginx-style proxies to pass each event on at once.
                "X-Accel-Buffering": "no",
            },
        )
        self._release = release
        self._released = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if not self._released:
                self._released = True
                self._release()


def get_event_stream_config(request: Request, settings: Settings) -> EventStreamConfig:
    """Return the app's stream config: `app.state.event_stream_config` if set."""
    config = getattr(request.app.state, "event_stream_config", None)
    if isinstance(config, EventStreamConfig):
        return config
    return EventStreamConfig.from_settings(settings)


def get_stream_slots(request: Request, config: EventStreamConfig) -> StreamSlots:
    slots = getattr(request.app.state, "event_stream_slots", None)
    if not isinstance(slots, StreamSlots):
        slots = StreamSlots(config.max_streams)
        request.app.state.event_stream_slots = slots
    return slots


def format_event(event: str, data: dict[str, Any]) -> str:
    """Encode one server-sent event; the JSON has no newlines, so one data line."""
    payload = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return f"event: {event}\ndata: {payload}\n\n"


def change_fingerprint(resource: dict[str, Any]) -> str:
    """Serialize the resource without its download URLs, to detect real changes."""
    stable = {key: value for key, value in resource.items() if key not in URL_FIELDS}
    stable["has_archive"] = resource.get("archive_url") is not None
    stable["operations"] = [
        {
            **{k: v for k, v in entry.items() if k not in OPERATION_URL_FIELDS},
            "has_result": entry.get("result_url") is not None,
        }
        for entry in resource.get("operations", [])
    ]
    return json.dumps(stable, sort_keys=True, separators=(",", ":"))


def is_final(resource: dict[str, Any]) -> bool:
    return resource.get("status") in FINAL_JOB_STATUSES


def end_event(job_id: str, status: str | None, **extra: Any) -> str:
    return format_event("end", {"job_id": job_id, "status": status, **extra})


async def stream_job_events(
    services: ApiServices,
    job_id: str,
    first: dict[str, Any],
    config: EventStreamConfig,
) -> AsyncIterator[str]:
    """Yield the events of one job until it is final or the stream times out."""
    started = time.monotonic()
    events_sent = 1
    reason = "cancelled"
    try:
        yield f"retry: {config.retry_milliseconds}\n\n"
        yield format_event("job", first)
        if is_final(first):
            reason = "final"
            yield end_event(job_id, first["status"])
            return

        last_fingerprint = change_fingerprint(first)
        last_write = time.monotonic()
        while True:
            await asyncio.sleep(config.poll_interval_seconds)
            now = time.monotonic()
            if now - started >= config.max_stream_seconds:
                reason = "max-duration"
                return

            try:
                resource = await run_in_threadpool(load_job_resource, services, job_id)
            except JobNotFoundError as exc:
                # The job was purged while the stream was open.
                reason = "job-not-found"
                error = {"code": exc.code, "message": exc.message}
                yield end_event(job_id, None, error=error)
                return
            except Exception as exc:
                # No error response is possible once the stream has started. The
                # client reconnects after the retry hint and polls again.
                reason = "read-failed"
                logger.warning(
                    "event_stream_read_failed",
                    job_id=job_id,
                    error_type=type(exc).__name__,
                    exc_info=exc,
                )
                return

            fingerprint = change_fingerprint(resource)
            if fingerprint != last_fingerprint:
                last_fingerprint = fingerprint
                last_write = now
                events_sent += 1
                yield format_event("job", resource)
            elif now - last_write >= config.heartbeat_seconds:
                last_write = now
                yield ": heartbeat\n\n"

            if is_final(resource):
                reason = "final"
                yield end_event(job_id, resource["status"])
                return
    finally:
        logger.info(
            "event_stream_closed",
            job_id=job_id,
            reason=reason,
            events_sent=events_sent,
            duration_seconds=round(time.monotonic() - started, 3),
        )


@router.get(
    "/jobs/{job_id}/events",
    name="read_job_events",
    # FastAPI reads the default status from the response class's __init__,
    # which this subclass does not offer, so the OpenAPI document needs it here.
    status_code=200,
    response_class=EventStreamResponse,
    responses={
        200: {
            "content": {EVENT_STREAM_MEDIA_TYPE: {}},
            "description": "Stream of `job` events, then one `end` event.",
        },
        **ERROR_RESPONSES,
    },
)
async def read_job_events(
    job_id: str, request: Request, services: ServicesDep
) -> EventStreamResponse:
    """Stream the job resource each time it changes, until the job is final."""
    if len(job_id) > MAX_JOB_ID_LENGTH:
        raise JobNotFoundError()

    # Read the job before the stream starts, so an unknown job gets a plain 404.
    first = await run_in_threadpool(load_job_resource, services, job_id)

    config = get_event_stream_config(request, services.settings)
    slots = get_stream_slots(request, config)
    if not slots.try_acquire():
        logger.warning("event_stream_rejected", job_id=job_id, open=slots.open)
        raise TooManyEventStreamsError()

    logger.info("event_stream_opened", job_id=job_id, status=first.get("status"))
    return EventStreamResponse(
        stream_job_events(services, job_id, first, config), slots.release
    )
