"""Circuit breakers per host with real HTTP failures and state in real Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pybreaker
import redis

from pixtools_shared.testing import free_port, redis_test_url
from pixtools_shared.webhooks.breaker import BreakerRegistry
from pixtools_shared.webhooks.delivery import DeliveryPolicy, DeliveryResult, deliver
from pixtools_shared.webhooks.destinations import AllowList
from pixtools_shared.webhooks.testkit import Reply, ScriptedServer

BODY = b"{}"
HEADERS = {"Content-Type": "application/json"}
POLICY = DeliveryPolicy(0.5, 3.0, AllowList.parse(["127.0.0.1"]))
RESET_SECONDS = 2.0


def redis_registry(prefix: str, fail_max: int = 3) -> BreakerRegistry:
    """A registry with its own Redis client, as a separate worker process has."""
    client = redis.Redis.from_url(redis_test_url(), decode_responses=False)
    return BreakerRegistry(
        fail_max=fail_max,
        reset_seconds=RESET_SECONDS,
        redis_client=client,
        namespace_prefix=prefix,
    )


def send(server: ScriptedServer, registry: BreakerRegistry) -> DeliveryResult:
    return deliver(server.url(), BODY, HEADERS, POLICY, registry)


def test_opens_after_fail_max_server_errors(
    redis_client: redis.Redis, breaker_prefix: str
) -> None:
    registry = redis_registry(breaker_prefix)
    with ScriptedServer([Reply(500)]) as server:
        failures = [send(server, registry) for _ in range(3)]
        blocked = send(server, registry)

    assert [result.error for result in failures] == ["endpoint returned HTTP 500"] * 3
    assert len(server.requests) == 3
    assert blocked.error == "the circuit breaker of 127.0.0.1 is open"
    assert blocked.retryable is True
    assert blocked.retry_after_seconds is not None
    assert 0 < blocked.retry_after_seconds <= RESET_SECONDS
    state = redis_client.get(f"{breaker_prefix}:127.0.0.1:pybreaker:state")
    assert state == b"open"


def test_timeouts_open_breaker(breaker_prefix: str) -> None:
    registry = redis_registry(breaker_prefix, fail_max=2)
    with ScriptedServer([Reply(200, delay_seconds=1.5)]) as server:
        first = send(server, registry)
        second = send(server, registry)
        blocked = send(server, registry)

    assert first.error is not None and first.error.startswith("timed out")
    assert second.error is not None and second.error.startswith("timed out")
    assert blocked.error == "the circuit breaker of 127.0.0.1 is open"
    assert len(server.requests) == 2


def test_client_errors_do_not_open(breaker_prefix: str) -> None:
    registry = redis_registry(breaker_prefix)
    with ScriptedServer([Reply(404)]) as server:
        results = [send(server, registry) for _ in range(5)]

    assert [result.status_code for result in results] == [404] * 5
    assert len(server.requests) == 5
    assert registry.for_host("127.0.0.1").current_state == pybreaker.STATE_CLOSED


def test_state_shared_between_processes(breaker_prefix: str) -> None:
    first_worker = redis_registry(breaker_prefix)
    second_worker = redis_registry(breaker_prefix)
    with ScriptedServer([Reply(502)]) as server:
        for _ in range(3):
            send(server, first_worker)
        blocked = send(server, second_worker)

    assert len(server.requests) == 3
    assert blocked.error == "the circuit breaker of 127.0.0.1 is open"

    # A separate Python process reads the same breaker from Redis.
    script = (
        "import redis\n"
        "from pixtools_shared.webhooks.breaker import BreakerRegistry\n"
        f"client = redis.Redis.from_url({redis_test_url()!r})\n"
        "registry = BreakerRegistry(fail_max=3, reset_seconds=60,"
        f" redis_client=client, namespace_prefix={breaker_prefix!r})\n"
        "print(registry.for_host('127.0.0.1').current_state)\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert output.stdout.strip() == "open"


def test_half_opens_after_reset_and_closes(breaker_prefix: str) -> None:
    registry = redis_registry(breaker_prefix)
    with ScriptedServer([Reply(500), Reply(500), Reply(500), Reply(200)]) as server:
        for _ in range(3):
            send(server, registry)
        blocked = send(server, registry)
        time.sleep(RESET_SECONDS + 0.2)
        trial = send(server, registry)
        after = send(server, registry)

    assert blocked.error == "the circuit breaker of 127.0.0.1 is open"
    assert trial.delivered is True
    assert after.delivered is True
    assert len(server.requests) == 5
    assert registry.for_host("127.0.0.1").current_state == pybreaker.STATE_CLOSED


def test_failed_trial_opens_again(breaker_prefix: str) -> None:
    registry = redis_registry(breaker_prefix)
    with ScriptedServer([Reply(503)]) as server:
        for _ in range(3):
            send(server, registry)
        time.sleep(RESET_SECONDS + 0.2)
        trial = send(server, registry)
        blocked = send(server, registry)

    assert trial.error == "endpoint returned HTTP 503"
    assert len(server.requests) == 4
    assert blocked.error == "the circuit breaker of 127.0.0.1 is open"
    assert registry.for_host("127.0.0.1").current_state == pybreaker.STATE_OPEN


def test_memory_storage_without_redis() -> None:
    registry = BreakerRegistry(fail_max=2, reset_seconds=60, redis_client=None)
    other_process = BreakerRegistry(fail_max=2, reset_seconds=60, redis_client=None)
    with ScriptedServer([Reply(500)]) as server:
        send(server, registry)
        send(server, registry)
        blocked = send(server, registry)
        unshared = send(server, other_process)

    assert blocked.error == "the circuit breaker of 127.0.0.1 is open"
    assert unshared.error == "endpoint returned HTTP 500"
    assert len(server.requests) == 3


def test_unreachable_redis_falls_back_to_memory() -> None:
    client = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5)
    registry = BreakerRegistry(fail_max=2, reset_seconds=60, redis_client=client)

    breaker = registry.for_host("hooks.example.com")

    assert isinstance(breaker._state_storage, pybreaker.CircuitMemoryStorage)
    assert breaker.current_state == pybreaker.STATE_CLOSED
