"""Guarded transitions of a job's webhook delivery state."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Executable, update
from sqlalchemy.orm import Session

from pixtools_shared.db.models import Job, WebhookStatus, utc_now

MAX_WEBHOOK_ERROR_LENGTH = 1000


def _changed(session: Session, statement: Executable) -> bool:
    result = cast(
        CursorResult[Any],
        session.execute(statement, execution_options={"synchronize_session": False}),
    )
    return result.rowcount > 0


def _pending(job_id: str) -> Any:
    return (Job.id == job_id) & (Job.webhook_status == WebhookStatus.PENDING)


def record_webhook_attempt(
    session: Session, job_id: str, *, now: datetime | None = None
) -> bool:
    """Count one delivery attempt of a PENDING webhook; False if not pending."""
    now = now or utc_now()
    return _changed(
        session,
        update(Job)
        .where(_pending(job_id))
        .values(webhook_attempts=Job.webhook_attempts + 1, webhook_updated_at=now),
    )


def record_webhook_error(
    session: Session,
    job_id: str,
    error: str,
    *,
    status_code: int | None = None,
    now: datetime | None = None,
) -> bool:
    """Store the error of a failed attempt that will be retried."""
    now = now or utc_now()
    return _changed(
        session,
        update(Job)
        .where(_pending(job_id))
        .values(
            webhook_last_error=error[:MAX_WEBHOOK_ERROR_LENGTH],
            webhook_last_status_code=status_code,
            webhook_updated_at=now,
        ),
    )


def mark_webhook_delivered(
    session: Session,
    job_id: str,
    *,
    status_code: int | None = None,
    now: datetime | None = None,
) -> bool:
    now = now or utc_now()
    return _changed(
        session,
        update(Job)
        .where(_pending(job_id))
        .values(
            webhook_status=WebhookStatus.DELIVERED,
            webhook_last_error=None,
            webhook_last_status_code=status_code,
            webhook_updated_at=now,
        ),
    )


def mark_webhook_failed(
    session: Session,
    job_id: str,
    error: str,
    *,
    status_code: int | None = None,
    now: datetime | None = None,
) -> bool:
    """Fail a PENDING webhook; ``status_code`` None keeps the stored one."""
    now = now or utc_now()
    values: dict[str, Any] = {
        "webhook_status": WebhookStatus.FAILED,
        "webhook_last_error": error[:MAX_WEBHOOK_ERROR_LENGTH],
        "webhook_updated_at": now,
    }
    if status_code is not None:
        values["webhook_last_status_code"] = status_code
    return _changed(session, update(Job).where(_pending(job_id)).values(**values))


def touch_webhook(
    session: Session,
    job_id: str,
    *,
    stale_before: datetime,
    now: datetime | None = None,
) -> bool:
    """Take over a PENDING webhook untouched since ``stale_before`` (recovery)."""
    now = now or utc_now()
    return _changed(
        session,
        update(Job)
        .where(
            _pending(job_id),
            (Job.webhook_updated_at < stale_before)
            | (Job.webhook_updated_at.is_(None) & (Job.finished_at < stale_before)),
        )
        .values(webhook_updated_at=now),
    )
