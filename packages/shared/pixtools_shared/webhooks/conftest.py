"""Fixtures of the webhook delivery tests: a guard against outbound connections,
the test Redis and unique breaker namespaces."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import redis

from pixtools_shared.testing import redis_available, redis_test_url
from pixtools_shared.webhooks.breaker import BreakerRegistry
from pixtools_shared.webhooks.testkit import OutboundGuard, install_outbound_guard


@pytest.fixture(autouse=True)
def outbound_guard(monkeypatch: pytest.MonkeyPatch) -> Iterator[OutboundGuard]:
    """Every test here may connect to loopback only; anything else fails it."""
    guard = install_outbound_guard(monkeypatch)
    yield guard
    assert guard.refused == [], f"connections left the machine: {guard.refused}"


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    url = redis_test_url()
    if not redis_available(url):
        pytest.skip(f"Redis is not reachable at {url}")
    client = redis.Redis.from_url(url, decode_responses=False)
    yield client
    client.close()


@pytest.fixture
def breaker_prefix(redis_client: redis.Redis) -> Iterator[str]:
    """A breaker namespace of this test; its Redis keys are deleted afterwards."""
    prefix = f"pixtools-test:breaker:{secrets.token_hex(6)}"
    yield prefix
    for key in redis_client.scan_iter(match=f"{prefix}:*"):
        redis_client.delete(key)


def memory_breakers(fail_max: int = 3, reset_seconds: float = 60.0) -> BreakerRegistry:
    return BreakerRegistry(
        fail_max=fail_max, reset_seconds=reset_seconds, redis_client=None
    )
