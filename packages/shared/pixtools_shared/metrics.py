"""Prometheus metrics that PixTools processes set.

They live in the default registry of the process that sets them; exporting them
(an HTTP endpoint, multiprocess collection for prefork workers) is not done here.
"""

from __future__ import annotations

from prometheus_client import Gauge

DEAD_LETTERS = Gauge(
    "pixtools_dead_letters",
    "Messages waiting in the dead-letter queue, as last counted.",
)
