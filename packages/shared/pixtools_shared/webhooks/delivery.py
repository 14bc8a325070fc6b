"""One webhook delivery attempt: vet the destination, POST through its breaker.

The attempt never follows redirects and never resolves the host a second time.
Timeouts, connection errors and 5xx responses are failures of the receiving
host: they count toward its circuit breaker and are retried. 408 and 429 mean
"try again later" from a live receiver, so they are retried without counting
as breaker failures. Every other status (other 4xx, 3xx) fails the delivery.
"""

from __future__ import annotations

import email.utils
import functools
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import certifi
import httpcore
import pybreaker
import structlog

from pixtools_shared.observability.tracing import traced_http_post
from pixtools_shared.webhooks.breaker import BreakerRegistry
from pixtools_shared.webhooks.deadline import Deadline
from pixtools_shared.webhooks.destinations import (
    AllowList,
    Destination,
    DestinationRejectedError,
    ResolutionError,
    Resolver,
    system_resolver,
    vet_destination,
)
from pixtools_shared.webhooks.transport import PinnedNetworkBackend

log = structlog.get_logger(__name__)

# Live receivers asking for a later retry; not breaker failures.
RETRY_LATER_STATUS_CODES = frozenset({408, 429})


@dataclass(frozen=True)
class DeliveryPolicy:
    """Timeouts and the allow-list of one delivery attempt."""

    timeout_seconds: float
    """Limit of each single connect, send or receive."""
    deadline_seconds: float
    """Limit of the whole attempt, DNS lookup included."""
    allow_list: AllowList

    @classmethod
    def from_settings(
        cls, timeout_seconds: float, deadline_seconds: float, allowed_hosts: list[str]
    ) -> DeliveryPolicy:
        return cls(timeout_seconds, deadline_seconds, AllowList.parse(allowed_hosts))


@dataclass(frozen=True)
class DeliveryResult:
    """Outcome of one delivery attempt."""

    delivered: bool
    error: str | None = None
    retryable: bool = False
    status_code: int | None = None
    retry_after_seconds: float | None = None
    """Wait the receiver asked for (Retry-After) or the breaker's time left."""
    connected_to: tuple[tuple[str, int], ...] = field(default=())


class AttemptFailedError(Exception):
    """A failure of the receiving host: timeout, connection error or 5xx."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


@dataclass(frozen=True)
class _Response:
    status_code: int
    retry_after_seconds: float | None


@functools.cache
def default_ssl_context() -> ssl.SSLContext:
    """TLS settings of deliveries: certificate and host name checks on."""
    return ssl.create_default_context(cafile=certifi.where())


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds in a Retry-After header (delta-seconds or HTTP date), else None."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@traced_http_post("POST webhook")
def _send(
    destination: Destination,
    body: bytes,
    headers: Mapping[str, str],
    policy: DeliveryPolicy,
    deadline: Deadline,
    backend: PinnedNetworkBackend,
    ssl_context: ssl.SSLContext,
) -> _Response:
    request_headers = [("Host", destination.host_header), *headers.items()]
    request_headers.append(("Content-Length", str(len(body))))
    timeout = policy.timeout_seconds
    url = httpcore.URL(
        scheme=destination.scheme,
        host=destination.host,
        port=destination.port,
        target=destination.target,
    )

    with httpcore.ConnectionPool(
        ssl_context=ssl_context,
        max_connections=1,
        http1=True,
        http2=False,
        retries=0,
        network_backend=backend,
    ) as pool:
        try:
            # Leaving the block closes the connection without reading the body:
            # only the status line and headers matter.
            with pool.stream(
                "POST",
                url,
                headers=request_headers,
                content=body,
                extensions={
                    "timeout": {
                        "connect": timeout,
                        "read": timeout,
                        "write": timeout,
                        "pool": timeout,
                    }
                },
            ) as response:
                status = response.status
                retry_after = None
                for name, value in response.headers:
                    if name.lower() == b"retry-after":
                        retry_after = parse_retry_after(value.decode("latin-1"))
        except httpcore.TimeoutException as exc:
            if deadline.remaining() <= 0:
                raise AttemptFailedError(
                    f"timed out: the attempt deadline of {deadline.seconds:g} s passed"
                ) from exc
            raise AttemptFailedError(f"timed out after {timeout:g} s ({exc})") from exc
        except (httpcore.NetworkError, httpcore.ProtocolError) as exc:
            raise AttemptFailedError(
                f"connection failed: {type(exc).__name__}: {exc}"
            ) from exc

    if status >= 500:
        raise AttemptFailedError(f"endpoint returned HTTP {status}", status)
    return _Response(status, retry_after)


def deliver(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    policy: DeliveryPolicy,
    breakers: BreakerRegistry,
    *,
    resolver: Resolver = system_resolver,
    ssl_context: ssl.SSLContext | None = None,
) -> DeliveryResult:
    """POST ``body`` to ``url`` once; network, TLS and HTTP failures are returned."""
    started = time.monotonic()
    deadline = Deadline(policy.deadline_seconds)
    try:
        destination = vet_destination(url, policy.allow_list, deadline, resolver)
    except DestinationRejectedError as exc:
        return DeliveryResult(delivered=False, error=exc.reason)
    except ResolutionError as exc:
        return DeliveryResult(delivered=False, error=str(exc), retryable=True)

    breaker = breakers.for_host(destination.host)
    backend = PinnedNetworkBackend(destination, deadline)
    context = ssl_context or default_ssl_context()
    try:
        response = breaker.call(
            _send, destination, body, headers, policy, deadline, backend, context
        )
    except pybreaker.CircuitBreakerError:
        wait = breakers.seconds_until_half_open(destination.host)
        return DeliveryResult(
            delivered=False,
            error=f"the circuit breaker of {destination.host} is open",
            retryable=True,
            retry_after_seconds=wait,
        )
    except AttemptFailedError as exc:
        log.info(
            "webhook_attempt_failed",
            host=destination.host,
            error=exc.message,
            breaker_state=breaker.current_state,
            duration_s=round(time.monotonic() - started, 3),
        )
        return DeliveryResult(
            delivered=False,
            error=exc.message,
            retryable=True,
            status_code=exc.status_code,
            connected_to=tuple(backend.connected_to),
        )

    return _classify(response, tuple(backend.connected_to))


def _classify(
    response: _Response, connected_to: tuple[tuple[str, int], ...]
) -> DeliveryResult:
    status = response.status_code
    if 200 <= status < 300:
        return DeliveryResult(
            delivered=True, status_code=status, connected_to=connected_to
        )
    if status in RETRY_LATER_STATUS_CODES:
        return DeliveryResult(
            delivered=False,
            error=f"endpoint returned HTTP {status}",
            retryable=True,
            status_code=status,
            retry_after_seconds=response.retry_after_seconds,
            connected_to=connected_to,
        )
    if 300 <= status < 400:
        message = f"endpoint returned HTTP {status}; redirects are not followed"
    else:
        message = f"endpoint returned HTTP {status}"
    return DeliveryResult(
        delivered=False, error=message, status_code=status, connected_to=connected_to
    )
