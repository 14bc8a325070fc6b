"""Prometheus metrics of the dead-letter tooling.

The gauge is set by the ``count_dead_letters`` beat task (in a worker, where
prometheus-client's multiprocess mode merges the processes' values, keeping the
most recent one) and by the ``dead-letters`` commands.
"""

from __future__ import annotations

from prometheus_client import Gauge

DEAD_LETTERS = Gauge(
    "pixtools_dead_letters",
    "Messages waiting in the dead-letter queue, as last counted.",
    multiprocess_mode="mostrecent",
)
