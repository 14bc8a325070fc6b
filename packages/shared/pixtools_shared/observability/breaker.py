"""A pybreaker listener that exports circuit breaker state changes as metrics."""

from __future__ import annotations

import pybreaker
import structlog

from pixtools_shared.observability import metrics

log = structlog.get_logger(__name__)


class BreakerMetricsListener(pybreaker.CircuitBreakerListener):
    """Count state changes and keep ``pixtools_circuit_breakers_open`` current.

    ``breaker`` is the label value. It is fixed per listener, so breakers kept
    per webhook host share one label value instead of putting hosts in a label.
    """

    def __init__(self, breaker: str) -> None:
        self.breaker = breaker

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        old = _state_label(old_state)
        new = _state_label(new_state)
        if old == new:
            return
        metrics.BREAKER_TRANSITIONS.labels(breaker=self.breaker, state=new).inc()
        if new == "open":
            metrics.BREAKERS_OPEN.labels(breaker=self.breaker).inc()
        elif old == "open":
            metrics.BREAKERS_OPEN.labels(breaker=self.breaker).dec()
        log.warning(
            "circuit_breaker_state_changed",
            breaker=self.breaker,
            name=cb.name,
            old_state=old,
            state=new,
        )


def _state_label(state: pybreaker.CircuitBreakerState | None) -> str | None:
    if state is None:
        return None
    return str(state.name).replace("-", "_")
