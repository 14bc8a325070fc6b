from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from pixtools_shared.errors import InvalidImageError, TransientError
from pixtools_shared.retry import (
    RetryAction,
    RetryPlan,
    backoff_seconds,
    is_transient,
    plan_retry,
)
from pixtools_shared.storage import StorageError


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (TransientError("x"), True),
        (StorageError("x"), True),
        (OperationalError("SELECT 1", {}, Exception("server closed")), True),
        (IntegrityError("INSERT", {}, Exception("duplicate")), False),
        (InvalidImageError("x"), False),
        (ValueError("x"), False),
    ],
)
def test_is_transient(exc: BaseException, expected: bool) -> None:
    assert is_transient(exc) is expected


@pytest.mark.parametrize("retry", [0, 1, 2, 5, 10, 100])
def test_backoff_bounds(retry: int) -> None:
    ceiling = min(60.0, 1.0 * 2**retry)
    delays = [backoff_seconds(retry, 1.0, 60.0) for _ in range(200)]

    assert min(delays) >= ceiling * 0.5
    assert max(delays) <= ceiling


def test_backoff_jitter_varies() -> None:
    delays = {backoff_seconds(3, 1.0, 60.0) for _ in range(50)}

    assert len(delays) > 1


def _plan(retry: int, remaining: float = 100.0, inline_max: float = 10.0) -> RetryPlan:
    return plan_retry(
        retry,
        max_retries=5,
        base=1.0,
        maximum=60.0,
        inline_max=inline_max,
        remaining_seconds=remaining,
    )


def test_plan_short_delay_waits_in_task() -> None:
    plan = _plan(0)

    assert plan.action is RetryAction.WAIT
    assert 0.5 <= plan.delay_seconds <= 1.0


def test_plan_long_delay_republished() -> None:
    plan = _plan(4, inline_max=5.0)

    assert plan.action is RetryAction.REPUBLISH
    assert 8.0 <= plan.delay_seconds <= 16.0


def test_plan_republishes_when_time_runs_out() -> None:
    assert _plan(1, remaining=1.9).action is RetryAction.REPUBLISH


def test_plan_gives_up_after_max_retries() -> None:
    assert _plan(5) == RetryPlan(RetryAction.GIVE_UP, 0.0)
