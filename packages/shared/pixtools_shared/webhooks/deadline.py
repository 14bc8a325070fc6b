"""A wall-clock deadline that bounds every step of one webhook delivery attempt."""

from __future__ import annotations

import time
from collections.abc import Callable


class Deadline:
    """A point in time, given as seconds from now, measured on a monotonic clock."""

    def __init__(
        self, seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.seconds = seconds
        self._clock = clock
        self._ends_at = clock() + seconds

    def remaining(self) -> float:
        """Seconds left; zero or less once the deadline has passed."""
        return self._ends_at - self._clock()

    def bound(self, timeout: float | None, error: type[Exception]) -> float:
        """Return ``timeout`` cut to the time left; raise ``error`` once none is."""
        remaining = self.remaining()
        if remaining <= 0:
            raise error(f"the attempt deadline of {self.seconds:g} s passed")
        if timeout is None:
            return remaining
        return min(timeout, remaining)
