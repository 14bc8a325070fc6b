"""Classification of transient errors, the delay before each retry, and how a
task waits for it."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from pixtools_shared.errors import TransientError

# Database errors raised when the server is unreachable, restarts, times out a
# statement or the pool has no free connection. Constraint violations and
# programming errors are not among them.
TRANSIENT_DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    DisconnectionError,
    PoolTimeoutError,
)


def is_transient(exc: BaseException) -> bool:
    """Return whether ``exc`` is a temporary failure of storage, network or DB."""
    return isinstance(exc, (TransientError, *TRANSIENT_DATABASE_ERRORS))


def backoff_seconds(retry: int, base: float, maximum: float) -> float:
    """Delay before retry number ``retry`` (0-based): exponential, capped, jittered.

    The delay is ``min(maximum, base * 2**retry)`` scaled by a random factor in
    [0.5, 1.0], so workers that failed together do not retry together.
    """
    ceiling = min(maximum, base * (2 ** min(retry, 30)))
    return ceiling * random.uniform(0.5, 1.0)


class RetryAction(StrEnum):
    """The retry strategy a task uses after a transient error."""

    WAIT = "wait"
    """Sleep in the task, then try again in the same process."""
    REPUBLISH = "republish"
    """Write a delayed outbox message and let the current one be acknowledged."""
    GIVE_UP = "give-up"
    """No retry is left: fail with the error."""


@dataclass(frozen=True)
class RetryPlan:
    action: RetryAction
    delay_seconds: float


def plan_retry(
    retry: int,
    *,
    max_retries: int,
    base: float,
    maximum: float,
    inline_max: float,
    remaining_seconds: float,
) -> RetryPlan:
    """Choose how retry number ``retry`` (0-based) happens, and after what delay.

    A delay up to ``inline_max`` is waited in the task when it leaves at least
    as much time again for the next try before the task's time limit
    (``remaining_seconds``). Longer delays are re-published through the outbox,
    because a message that waits in a worker stays unacknowledged (RabbitMQ
    closes the channel of a consumer that keeps one past its consumer_timeout).
    """
    if retry >= max_retries:
        return RetryPlan(RetryAction.GIVE_UP, 0.0)
    delay = backoff_seconds(retry, base, maximum)
    if delay <= inline_max and delay * 2 < remaining_seconds:
        return RetryPlan(RetryAction.WAIT, delay)
    return RetryPlan(RetryAction.REPUBLISH, delay)


T = TypeVar("T")


def call_retrying_transient(
    func: Callable[[], T],
    *,
    max_retries: int,
    base: float,
    maximum: float,
    inline_max: float,
    budget_seconds: float,
    on_retry: Callable[[BaseException, int, float], None] | None = None,
) -> T:
    """Call ``func``; retry it in this process after transient errors.

    Only waits that fit ``inline_max`` and the time ``budget_seconds`` left are
    taken; any other error, or a transient one past the retries, is raised.
    ``on_retry(error, retry, delay)`` runs before each wait (for logging).
    """
    started = time.monotonic()
    retry = 0
    while True:
        try:
            return func()
        except Exception as exc:
            if not is_transient(exc):
                raise
            plan = plan_retry(
                retry,
                max_retries=max_retries,
                base=base,
                maximum=maximum,
                inline_max=inline_max,
                remaining_seconds=budget_seconds - (time.monotonic() - started),
            )
            if plan.action is not RetryAction.WAIT:
                raise
            if on_retry is not None:
                on_retry(exc, retry, plan.delay_seconds)
            time.sleep(plan.delay_seconds)
            retry += 1
