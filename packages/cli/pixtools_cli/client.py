"""HTTP client of the PixTools API, with retries that are safe to repeat.

GET requests are idempotent. POST /api/process carries an Idempotency-Key, so a
retry after a network error or a 5xx returns the job that the first attempt may
have created instead of a second job. 4xx responses are never retried.
"""

from __future__ import annotations

import json
import mimetypes
import random
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import httpx
import structlog

from pixtools_cli.errors import ApiRejectedError, ApiUnavailableError

logger = structlog.get_logger(__name__)

API_KEY_HEADER = "X-API-Key"
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
USER_AGENT = "pixtools-cli/1.0"

# Statuses worth another attempt: the server or a proxy in front of it was busy
# or failed. Other 5xx statuses are retried too (see `is_retryable_status`).
RETRY_AFTER_STATUSES = frozenset({429, 502, 503, 504})

# Longest wait honoured from a Retry-After header, in seconds.
MAX_RETRY_AFTER_SECONDS = 30.0


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a request that failed transiently."""

    attempts: int = 4
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 8.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed `attempt` (1-based), with jitter."""
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER_SECONDS)
        base = min(self.backoff_seconds * 2 ** (attempt - 1), self.max_backoff_seconds)
        return base * random.uniform(0.75, 1.25)


@dataclass(frozen=True)
class Timeouts:
    """Seconds for connecting and for each read or write of a request."""

    connect: float = 10.0
    request: float = 60.0

    def to_httpx(self) -> httpx.Timeout:
        return httpx.Timeout(self.request, connect=self.connect)


@dataclass(frozen=True)
class SubmittedJob:
    """Body of 202 Accepted from POST /api/process."""

    job_id: str
    status: str
    status_url: str
    replayed: bool


def is_retryable_status(status: int) -> bool:
    return status in RETRY_AFTER_STATUSES or status >= 500


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header in delay-seconds form; None otherwise."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def rejected_error(response: httpx.Response) -> ApiRejectedError:
    """Build the error of a 4xx response from the API's standard error body."""
    code = f"http-{response.status_code}"
    message = f"The API responded with HTTP {response.status_code}."
    details: list[dict[str, Any]] = []
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code") or code)
        message = str(error.get("message") or message)
        raw_details = error.get("details")
        if isinstance(raw_details, list):
            details = [entry for entry in raw_details if isinstance(entry, dict)]
    return ApiRejectedError(response.status_code, code, message, details)


class PixToolsClient:
    """Synchronous client of the PixTools API at `base_url`."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        retry: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.api_key = api_key
        self.retry = retry or RetryPolicy()
        self.sleep = sleep
        self._http = httpx.Client(
            timeout=(timeouts or Timeouts()).to_httpx(),
            transport=transport,
            headers={"User-Agent": USER_AGENT},
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PixToolsClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def url_for(self, path_or_url: str) -> str:
        """Resolve a path like `/api/jobs/...` (or an absolute URL) on the API."""
        return urljoin(self.base_url, path_or_url)

    def is_api_origin(self, url: str) -> bool:
        """True when `url` points at the API's own scheme, host and port."""
        target = urlsplit(url)
        api = urlsplit(self.base_url)
        return (target.scheme, target.netloc) == (api.scheme, api.netloc)

    def headers_for(self, url: str) -> dict[str, str]:
        """Headers for a request to `url`; the API key goes only to the API."""
        if self.api_key and self.is_api_origin(url):
            return {API_KEY_HEADER: self.api_key}
        return {}

    def request(
        self,
        method: str,
        url: str,
        *,
        build: Callable[[], Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        description: str,
    ) -> httpx.Response:
        """Send a request, retrying network errors and 5xx; raise on 4xx.

        `build` returns fresh keyword arguments (files, data) for each attempt,
        so an upload is read again from the start on a retry.
        """
        with self._send_with_retries(
            method, url, build=build, headers=headers, description=description
        ) as response:
            response.read()
            return response

    @contextmanager
    def stream(self, url: str, *, description: str) -> Iterator[httpx.Response]:
        """GET `url` as a stream (for downloads), with the same retry rules."""
        with self._send_with_retries(
            "GET", url, build=None, headers=None, description=description
        ) as response:
            yield response

    @contextmanager
    def _send_with_retries(
        self,
        method: str,
        url: str,
        *,
        build: Callable[[], Mapping[str, Any]] | None,
        headers: Mapping[str, str] | None,
        description: str,
    ) -> Iterator[httpx.Response]:
        full_url = self.url_for(url)
        all_headers = {**self.headers_for(full_url), **(headers or {})}
        last_problem = "no attempt made"

        for attempt in range(1, self.retry.attempts + 1):
            extra = dict(build()) if build is not None else {}
            retry_after: float | None = None
            try:
                request = self._http.build_request(
                    method, full_url, headers=all_headers, **extra
                )
                response = self._http.send(request, stream=True)
            except httpx.TransportError as exc:
                last_problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 400:
                    try:
                        yield response
                    finally:
                        response.close()
                    return
                response.read()
                response.close()
                if not is_retryable_status(response.status_code):
                    raise rejected_error(response)
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                last_problem = f"HTTP {response.status_code}"

            if attempt < self.retry.attempts:
                delay = self.retry.delay(attempt, retry_after)
                logger.info(
                    "request_retrying",
                    request=description,
                    attempt=attempt,
                    problem=last_problem,
                    delay_seconds=round(delay, 2),
                )
                self.sleep(delay)

        raise ApiUnavailableError(
            f"{description} failed after {self.retry.attempts} attempts "
            f"({last_problem}); is the API running at {self.base_url}?"
        )

    def get_limits(self) -> dict[str, Any]:
        """GET /api/limits: upload limits and the operations with their params."""
        response = self.request("GET", "api/limits", description="GET /api/limits")
        body: dict[str, Any] = response.json()
        return body

    def get_job(self, job_id: str) -> dict[str, Any]:
        """GET /api/jobs/{job_id}: the job resource."""
        path = f"api/jobs/{quote(job_id, safe='')}"
        response = self.request("GET", path, description=f"GET job {job_id}")
        body: dict[str, Any] = response.json()
        return body

    def submit_file(
        self,
        path: Path,
        *,
        operations: list[str],
        params: Mapping[str, Mapping[str, Any]],
        webhook_url: str | None,
        idempotency_key: str,
    ) -> SubmittedJob:
        """POST /api/process with one file; every retry sends the same key."""
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        data = {"operations": json.dumps(operations)}
        if params:
            data["operation_params"] = json.dumps(params)
        if webhook_url:
            data["webhook_url"] = webhook_url

        opened: list[Any] = []

        def build() -> dict[str, Any]:
            # A fresh handle per attempt: httpx reads the file while sending.
            handle = path.open("rb")
            opened.append(handle)
            return {"files": {"file": (path.name, handle, content_type)}, "data": data}

        try:
            response = self.request(
                "POST",
                "api/process",
                build=build,
                headers={IDEMPOTENCY_KEY_HEADER: idempotency_key},
                description=f"upload of {path.name}",
            )
        finally:
            for handle in opened:
                handle.close()

        body = response.json()
        return SubmittedJob(
            job_id=str(body["job_id"]),
            status=str(body.get("status", "QUEUED")),
            status_url=str(body.get("status_url", "")),
            replayed=response.headers.get("Idempotent-Replayed") == "true",
        )
