"""SSRF: canary servers on 127.0.0.1 must see no request for any spelling of an
internal address, and no redirect may lead a delivery to them.

The allow-list is empty unless a test names a receiver in it. The autouse
outbound guard (conftest.py) fails any test that opens a connection to an
address that is not loopback, so metadata and private addresses are proven to
be rejected before connecting.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pixtools_shared.settings import Settings
from pixtools_shared.webhook_url import InvalidWebhookUrlError, validate_webhook_url
from pixtools_shared.webhooks.conftest import memory_breakers
from pixtools_shared.webhooks.delivery import DeliveryPolicy, deliver
from pixtools_shared.webhooks.destinations import AllowList
from pixtools_shared.webhooks.testkit import OutboundGuard, Reply, ScriptedServer

BODY = b"{}"
HEADERS = {"Content-Type": "application/json"}
NO_ALLOW_LIST = DeliveryPolicy(1.0, 3.0, AllowList.parse([]))
SUBMIT_SETTINGS = Settings(WEBHOOK_ALLOW_HTTP=True)

# Spellings of 127.0.0.1 (and of the whole machine) that resolvers accept.
LOOPBACK_HOSTS = [
    "127.0.0.1",
    "2130706433",
    "0x7f000001",
    "0x7F.0.0.1",
    "0177.0.0.1",
    "0177.0000.0000.0001",
    "127.1",
    "127.0.1",
    "0",
    "0.0.0.0",  # noqa: S104 (a webhook host under test, not a bind)
    "127.0.0.1.",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[0:0:0:0:0:ffff:127.0.0.1]",
    "[::1]",
    "[::]",
    "[2002:7f00:1::]",
    "[64:ff9b::127.0.0.1]",
    "localhost",
    "localhost.",
    "LOCALHOST",
]

# Addresses that must be rejected without any packet: the outbound guard
# would fail the test if a connection were tried.
INTERNAL_HOSTS = [
    "169.254.169.254",
    "[fd00:ec2::254]",
    "100.100.100.200",
    "10.0.0.1",
    "192.168.1.1",
    "172.16.0.1",
    "100.64.0.1",
    "224.0.0.1",
    "[fe80::1]",
    "[fc00::1]",
    "240.0.0.1",
    "[::ffff:10.0.0.1]",
]


@pytest.fixture
def canary() -> Iterator[ScriptedServer]:
    with ScriptedServer([Reply(200)]) as server:
        yield server


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
def test_loopback_spellings_never_reach_canary(
    canary: ScriptedServer, host: str
) -> None:
    url = f"http://{host}:{canary.port}/hook"

    result = deliver(url, BODY, HEADERS, NO_ALLOW_LIST, memory_breakers())
    with pytest.raises(InvalidWebhookUrlError):
        validate_webhook_url(url, SUBMIT_SETTINGS)

    assert result.delivered is False
    assert result.retryable is False
    assert result.error is not None
    assert result.connected_to == ()
    assert canary.hits == 0


@pytest.mark.parametrize("host", INTERNAL_HOSTS)
def test_internal_addresses_rejected_before_connect(
    outbound_guard: OutboundGuard, host: str
) -> None:
    url = f"http://{host}/latest/meta-data/"

    result = deliver(url, BODY, HEADERS, NO_ALLOW_LIST, memory_breakers())
    with pytest.raises(InvalidWebhookUrlError):
        validate_webhook_url(url, SUBMIT_SETTINGS)

    assert result.delivered is False
    assert result.retryable is False
    assert outbound_guard.attempts == []


def test_public_name_resolving_to_loopback_rejected(canary: ScriptedServer) -> None:
    # The name passes the submit-time rules; only the delivery-time lookup
    # shows that it points at this machine.
    url = f"http://hooks.example.com:{canary.port}/hook"
    assert validate_webhook_url(url, SUBMIT_SETTINGS) == url

    result = deliver(
        url,
        BODY,
        HEADERS,
        NO_ALLOW_LIST,
        memory_breakers(),
        resolver=lambda host, port: ["127.0.0.1"],
    )

    assert result.error == (
        "the host hooks.example.com resolves to 127.0.0.1, a loopback address"
    )
    assert canary.hits == 0


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/x",
        "http://2130706433:{port}/x",
        "http://localhost:{port}/x",
        "http://receiver.test:{port}/x",
        "/relative-path",
    ],
)
def test_allow_listed_receiver_redirect_not_followed(
    canary: ScriptedServer, target: str
) -> None:
    location = target.format(port=canary.port)
    if location.startswith("/"):
        # A relative redirect points at the receiver itself; the canary is
        # then the receiver's own second request, which must not happen.
        location = f"http://receiver.test:{canary.port}/second"
    policy = DeliveryPolicy(1.0, 3.0, AllowList.parse(["receiver.test"]))

    with ScriptedServer([Reply(302, location=location)]) as receiver:
        result = deliver(
            f"http://receiver.test:{receiver.port}/hook",
            BODY,
            HEADERS,
            policy,
            memory_breakers(),
            resolver=lambda host, port: ["127.0.0.1"],
        )

    assert len(receiver.requests) == 1
    assert result.status_code == 302
    assert result.error == "endpoint returned HTTP 302; redirects are not followed"
    assert canary.hits == 0
