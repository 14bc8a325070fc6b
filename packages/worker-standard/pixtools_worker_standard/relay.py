"""The relay_outbox beat task: publish outbox messages left behind.

The API and the workers publish their outbox rows right after committing them.
This task publishes the rest: rows whose publish failed (broker down), rows of a
process that stopped before publishing, and delayed retries that are now due.
"""

from __future__ import annotations

import time

import structlog
from celery import Celery, Task

from pixtools_shared import outbox
from pixtools_shared.settings import Settings, get_settings
from pixtools_shared.tasks import RELAY_OUTBOX_TASK
from pixtools_worker_standard.app import app

log = structlog.get_logger(__name__)

# Batches of OUTBOX_BATCH_SIZE rows per run; the next run continues.
MAX_BATCHES_PER_RUN = 10


def relay_due(celery_app: Celery, settings: Settings) -> outbox.RelayReport:
    """Relay due rows batch by batch until none is left or a publish fails."""
    total = outbox.RelayReport()
    for _ in range(MAX_BATCHES_PER_RUN):
        report = outbox.relay(celery_app, settings=settings)
        total.claimed += report.claimed
        total.sent += report.sent
        total.failed += report.failed
        total.sent_ids.extend(report.sent_ids)
        total.error = report.error or total.error
        if report.error is not None or report.claimed < settings.OUTBOX_BATCH_SIZE:
            break
    return total


@app.task(bind=True, name=RELAY_OUTBOX_TASK, shared=False)
def relay_outbox(self: Task) -> dict[str, int]:
    """Publish every due outbox message that no one has published yet."""
    started = time.monotonic()
    report = relay_due(self.app, get_settings())
    if report.claimed:
        log.info(
            "outbox_relay_finished",
            task_id=self.request.id,
            sent=report.sent,
            failed=report.failed,
            duration_s=round(time.monotonic() - started, 3),
        )
    return {"sent": report.sent, "failed": report.failed}
