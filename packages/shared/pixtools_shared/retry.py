"""Classification of transient errors, the delay before each retry, and how a
task waits for it."""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

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
    """How a task retries after a transient error."""

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
    closes the channel of a consumer that holds one past its consumer_timeout).
    """
    if retry >= max_retries:
        return RetryPlan(RetryAction.GIVE_UP, 0.0)
    delay = backoff_seconds(retry, base, maximum)
    if delay <= inline_max and delay * 2 < remaining_seconds:
        return RetryPlan(RetryAction.WAIT, delay)
    return RetryPlan(RetryAction.REPUBLISH, delay)
