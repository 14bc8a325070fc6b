"""Delivery attempts against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import ssl
import time
from collections.abc import Sequence
from pathlib import Path

from pixtools_shared.webhooks.conftest import memory_breakers
from pixtools_shared.webhooks.delivery import DeliveryPolicy, deliver
from pixtools_shared.webhooks.destinations import AllowList
from pixtools_shared.webhooks.testkit import (
    Reply,
    ScriptedServer,
    self_signed_certificate,
)

BODY = b'{"type":"job.completed"}'
HEADERS = {"Content-Type": "application/json", "webhook-id": "msg_1"}


def policy(
    allow: Sequence[str] = ("127.0.0.1",), timeout: float = 2.0, deadline: float = 5.0
) -> DeliveryPolicy:
    return DeliveryPolicy(timeout, deadline, AllowList.parse(allow))


class OneAnswerResolver:
    """Resolves to one address the first time and rejects any second lookup."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.lookups: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        if len(self.lookups) > 1:
            raise OSError("second lookup: the delivery resolved the name again")
        return [self.address]


def test_delivered_to_receiver() -> None:
    with ScriptedServer([Reply(204)]) as server:
        result = deliver(
            server.url("/in?t=1"), BODY, HEADERS, policy(), memory_breakers()
        )

    assert result.delivered is True
    assert result.status_code == 204
    assert result.connected_to == (("127.0.0.1", server.port),)
    [request] = server.requests
    assert request.method == "POST"
    assert request.path == "/in?t=1"
    assert request.body == BODY
    assert request.headers["Host"] == f"127.0.0.1:{server.port}"
    assert request.headers["webhook-id"] == "msg_1"
    assert request.headers["Content-Length"] == str(len(BODY))


def test_connection_pinned_to_vetted_address() -> None:
    resolver = OneAnswerResolver("127.0.0.1")
    with ScriptedServer([Reply(200)]) as server:
        url = f"http://receiver.test:{server.port}/hook"
        result = deliver(
            url,
            BODY,
            HEADERS,
            policy(["receiver.test"]),
            memory_breakers(),
            resolver=resolver,
        )

    assert result.delivered is True
    assert resolver.lookups == ["receiver.test"]
    assert result.connected_to == (("127.0.0.1", server.port),)
    assert server.requests[0].headers["Host"] == f"receiver.test:{server.port}"


def test_tls_uses_host_name_for_sni(tmp_path: Path) -> None:
    cert, key = self_signed_certificate("receiver.test", tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=cert)
    resolver = OneAnswerResolver("127.0.0.1")

    with ScriptedServer([Reply(200)], tls_context=server_context) as server:
        url = f"https://receiver.test:{server.port}/hook"
        result = deliver(
            url,
            BODY,
            HEADERS,
            policy(["receiver.test"]),
            memory_breakers(),
            resolver=resolver,
            ssl_context=client_context,
        )

    # The certificate names receiver.test only, so the handshake succeeds only
    # if SNI and the host name check used the name, not the pinned address.
    assert result.delivered is True, result.error
    assert server.requests[0].headers["Host"] == f"receiver.test:{server.port}"


def test_tls_certificate_for_other_name_fails(tmp_path: Path) -> None:
    cert, key = self_signed_certificate("other.test", tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=cert)

    with ScriptedServer([Reply(200)], tls_context=server_context) as server:
        url = f"https://receiver.test:{server.port}/hook"
        result = deliver(
            url,
            BODY,
            HEADERS,
            policy(["receiver.test"]),
            memory_breakers(),
            resolver=OneAnswerResolver("127.0.0.1"),
            ssl_context=client_context,
        )

    assert result.delivered is False
    assert result.retryable is True
    assert result.error is not None
    assert "TLS handshake failed" in result.error
    assert server.requests == []


def test_server_error_retryable() -> None:
    with ScriptedServer([Reply(503)]) as server:
        result = deliver(server.url(), BODY, HEADERS, policy(), memory_breakers())

    assert (result.delivered, result.retryable, result.status_code) == (
        False,
        True,
        503,
    )
    assert result.error == "endpoint returned HTTP 503"


def test_client_error_not_retryable() -> None:
    with ScriptedServer([Reply(404)]) as server:
        result = deliver(server.url(), BODY, HEADERS, policy(), memory_breakers())

    assert (result.delivered, result.retryable, result.status_code) == (
        False,
        False,
        404,
    )
    assert result.error == "endpoint returned HTTP 404"


def test_rate_limited_retryable_with_retry_after() -> None:
    with ScriptedServer([Reply(429, retry_after="7")]) as server:
        result = deliver(server.url(), BODY, HEADERS, policy(), memory_breakers())

    assert (result.retryable, result.status_code) == (True, 429)
    assert result.retry_after_seconds == 7.0


def test_redirect_not_followed() -> None:
    canary = ScriptedServer([Reply(200)])
    with canary, ScriptedServer([Reply(307, location=canary.url())]) as server:
        result = deliver(server.url(), BODY, HEADERS, policy(), memory_breakers())

    assert (result.delivered, result.retryable, result.status_code) == (
        False,
        False,
        307,
    )
    assert result.error == "endpoint returned HTTP 307; redirects are not followed"
    assert canary.hits == 0


def test_refused_connection_retryable() -> None:
    with ScriptedServer() as server:
        url = server.url()
    # The server is closed now, so nothing listens on its port.
    result = deliver(url, BODY, HEADERS, policy(), memory_breakers())

    assert (result.delivered, result.retryable) == (False, True)
    assert result.error is not None
    assert result.error.startswith("connection failed: ConnectError")


def test_slow_response_times_out() -> None:
    with ScriptedServer([Reply(200, delay_seconds=1.5)]) as server:
        result = deliver(
            server.url(), BODY, HEADERS, policy(timeout=0.3), memory_breakers()
        )

    assert (result.delivered, result.retryable) == (False, True)
    assert result.error is not None
    assert result.error.startswith("timed out after 0.3 s")


def test_dribbling_receiver_cut_at_deadline() -> None:
    # One byte every 0.1 s never trips the 1 s read timeout; the 1.2 s
    # deadline around the whole attempt ends it.
    with ScriptedServer([Reply(dribble_seconds=0.1)]) as server:
        started = time.monotonic()
        result = deliver(
            server.url(),
            BODY,
            HEADERS,
            policy(timeout=1.0, deadline=1.2),
            memory_breakers(),
        )
        elapsed = time.monotonic() - started

    assert (result.delivered, result.retryable) == (False, True)
    assert result.error == "timed out: the attempt deadline of 1.2 s passed"
    assert 1.1 <= elapsed < 2.0
