"""Graceful worker shutdown: finish running tasks, or hand them back in time.

Celery's warm shutdown (SIGTERM) stops fetching messages and waits for the
running tasks however long they take. PixTools bounds that wait with
WORKER_SHUTDOWN_GRACE_SECONDS: when it passes with tasks still running, the
worker marks their operations QUEUED again and sends itself SIGQUIT. Celery's
cold shutdown then stops those tasks without acknowledging their messages, so
the broker delivers them to another worker. Marking them QUEUED first keeps the
next start from counting an interruption, because the hand-back was planned.

On the filesystem broker a message is gone once a worker takes it, so a task
handed back there is sent again by stalled-operation recovery.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import structlog
from celery import signals

log = structlog.get_logger(__name__)

_installed = threading.Lock()
_state: dict[str, bool] = {"installed": False}


def install() -> None:
    """Connect the shutdown handler once per process (idempotent)."""
    with _installed:
        if _state["installed"]:
            return
        signals.worker_shutting_down.connect(_on_shutting_down, weak=False)
        _state["installed"] = True


def _on_shutting_down(sig: str | None = None, how: str | None = None, **_: Any) -> None:
    from pixtools_shared.settings import get_settings

    grace = get_settings().WORKER_SHUTDOWN_GRACE_SECONDS
    if how != "Warm" or grace <= 0:
        return
    log.info("worker_shutdown_started", signal=sig, grace_s=grace)
    timer = threading.Timer(grace, _hand_back_running_tasks, kwargs={"grace": grace})
    timer.daemon = True
    timer.start()


def _hand_back_running_tasks(grace: float) -> None:
    from celery.worker import state

    requests = list(state.active_requests)
    if not requests:
        return
    handed_back = [requeue_request(request) for request in requests]
    log.warning(
        "worker_shutdown_grace_expired",
        grace_s=grace,
        running=len(requests),
        requeued_operations=sum(handed_back),
    )
    os.kill(os.getpid(), signal.SIGQUIT)


def requeue_request(request: Any) -> bool:
    """Mark the operation of a running operation task QUEUED; True if it was one."""
    from pixtools_shared import jobs
    from pixtools_shared.db.session import session_scope
    from pixtools_shared.tasks import OPERATION_TASKS

    args = list(getattr(request, "args", None) or [])
    if getattr(request, "name", None) not in set(OPERATION_TASKS.values()):
        return False
    if len(args) < 2:
        return False
    job_id, operation = str(args[0]), str(args[1])
    try:
        with session_scope() as session:
            return jobs.requeue_operation(session, job_id, operation)
    except Exception as exc:
        # The next start then counts one interruption; nothing else is lost.
        log.error(
            "operation_requeue_failed",
            job_id=job_id,
            operation=operation,
            exc_info=exc,
        )
        return False
