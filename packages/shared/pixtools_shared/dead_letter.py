"""Moving the message of the running task to the dead-letter queue.

On RabbitMQ the task raises ``Reject(requeue=False)``: the broker dead-letters
the message through the queue's dead-letter exchange and records why in its
``x-death`` header. The filesystem broker cannot dead-letter, so there the task
publishes a copy of its message to the ``dead_letters`` queue, with the reason
in the ``x-pixtools-dead-letter`` header, and its own message is acknowledged.
"""

from __future__ import annotations

from typing import Any, NoReturn

import structlog
from celery import Task
from celery.exceptions import Reject

from pixtools_shared.broker_topology import DEAD_LETTER_QUEUE, uses_amqp
from pixtools_shared.db.models import utc_now
from pixtools_shared.settings import Settings

log = structlog.get_logger(__name__)

# Header of a dead letter that PixTools wrote itself (filesystem broker).
DEAD_LETTER_HEADER = "x-pixtools-dead-letter"


def dead_letter_current_message(task: Task, settings: Settings, reason: str) -> None:
    """Dead-letter the message ``task`` is running; raises Reject on RabbitMQ."""
    request = task.request
    fields: dict[str, Any] = {
        "task": task.name,
        "task_id": request.id,
        "reason": reason,
    }
    if uses_amqp(settings):
        log.warning("message_dead_lettered", via="reject", **fields)
        _reject(reason)

    queue = _delivery_queue(request) or "unknown"
    header = {"reason": reason, "queue": queue, "time": utc_now().isoformat()}
    try:
        task.app.send_task(
            task.name,
            args=list(request.args or []),
            kwargs=dict(request.kwargs or {}),
            task_id=request.id,
            queue=DEAD_LETTER_QUEUE,
            retries=int(request.retries or 0),
            headers={DEAD_LETTER_HEADER: header},
        )
    except Exception as exc:
        # The operation is already failed with its message; only the copy is lost.
        log.error("dead_letter_publish_failed", exc_info=exc, **fields)
        return
    log.warning("message_dead_lettered", via="copy", queue=queue, **fields)


def _reject(reason: str) -> NoReturn:
    raise Reject(reason, requeue=False)


def _delivery_queue(request: Any) -> str | None:
    info = getattr(request, "delivery_info", None) or {}
    key = info.get("routing_key")
    return str(key) if key else None
