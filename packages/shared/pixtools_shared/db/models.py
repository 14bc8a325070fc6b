"""SQLAlchemy models of jobs, their operations, idempotency records and the outbox."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class JobStatus(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    FINALIZING = "FINALIZING"
    COMPLETED = "COMPLETED"
    COMPLETED_WITH_ERRORS = "COMPLETED_WITH_ERRORS"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"


class OperationStatus(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class WebhookStatus(StrEnum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"


ACTIVE_JOB_STATUSES = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})
FINAL_JOB_STATUSES = frozenset(
    {
        JobStatus.COMPLETED,
        JobStatus.COMPLETED_WITH_ERRORS,
        JobStatus.FAILED,
        JobStatus.EXPIRED,
    }
)
ACTIVE_OPERATION_STATUSES = frozenset({OperationStatus.QUEUED, OperationStatus.RUNNING})
FINAL_OPERATION_STATUSES = frozenset(
    {OperationStatus.SUCCEEDED, OperationStatus.FAILED}
)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamp on every backend.

    SQLite stores no offset, so values are converted to UTC on the way in and
    marked as UTC on the way out. Naive datetimes are rejected instead of being
    guessed at.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}; pass a timezone-aware value")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)


# Fixed constraint names keep migrations identical on PostgreSQL and SQLite.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
    }


class Job(Base):
    """One upload and the operations requested on it."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    status: Mapped[str] = mapped_column(String(32), default=JobStatus.QUEUED)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finalizing_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    expires_at: Mapped[datetime]

    source_filename: Mapped[str] = mapped_column(String(255))
    source_format: Mapped[str] = mapped_column(String(32))
    source_width: Mapped[int] = mapped_column(Integer)
    source_height: Mapped[int] = mapped_column(Integer)
    source_size_bytes: Mapped[int] = mapped_column(BigInteger)

    image_metadata: Mapped[dict[str, Any] | None] = mapped_column(
        "metadata", JSON, nullable=True
    )
    error_message: Mapped[str | None] = mapped_column(Text)
    archive_key: Mapped[str | None] = mapped_column(String(255))
    archive_size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    finalize_attempts: Mapped[int] = mapped_column(Integer, default=0)
    finalize_task_id: Mapped[str | None] = mapped_column(String(64))
    """Task that holds the finalization lease (builds the bundle right now)."""
    finalize_started_at: Mapped[datetime | None]
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    """Times an operator replayed a dead-lettered operation of this finished job."""

    webhook_url: Mapped[str | None] = mapped_column(Text)
    webhook_status: Mapped[str | None] = mapped_column(String(16))
    webhook_attempts: Mapped[int] = mapped_column(Integer, default=0)
    webhook_last_error: Mapped[str | None] = mapped_column(Text)
    webhook_last_status_code: Mapped[int | None] = mapped_column(Integer)
    """HTTP status of the last delivery attempt that got a response."""
    webhook_updated_at: Mapped[datetime | None]

    owner: Mapped[str | None] = mapped_column(String(64))
    """Id of the API key that created the job; None for anonymous callers."""

    operations: Mapped[list[JobOperation]] = relationship(
        back_populates="job",
        order_by="JobOperation.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
        lazy="selectin",
    )

    __table_args__ = (
        Index("ix_jobs_status_expires_at", "status", "expires_at"),
        Index("ix_jobs_status_updated_at", "status", "updated_at"),
    )


class JobOperation(Base):
    """One requested operation of a job and its result."""

    __tablename__ = "job_operations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("jobs.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(16))
    position: Mapped[int] = mapped_column(Integer)
    queue: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=OperationStatus.QUEUED)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)

    attempts: Mapped[int] = mapped_column(Integer, default=0)
    """Times a worker started this operation (retries included)."""
    interruptions: Mapped[int] = mapped_column(Integer, default=0)
    """Starts that found the operation still RUNNING: the previous run ended
    without a result (worker killed, out of memory, hard time limit)."""
    dispatch_count: Mapped[int] = mapped_column(Integer, default=0)
    """Times a task message was sent for this operation (first send included)."""
    task_id: Mapped[str | None] = mapped_column(String(64))

    queued_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)

    output_key: Mapped[str | None] = mapped_column(String(255))
    output_content_type: Mapped[str | None] = mapped_column(String(64))
    output_extension: Mapped[str | None] = mapped_column(String(16))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)

    job: Mapped[Job] = relationship(back_populates="operations")

    __table_args__ = (
        UniqueConstraint("job_id", "name"),
        Index("ix_job_operations_status_updated_at", "status", "updated_at"),
    )


class IdempotencyRecord(Base):
    """Maps a client's Idempotency-Key to the job its first request created."""

    __tablename__ = "idempotency_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(128), default="")
    key: Mapped[str] = mapped_column(String(255))
    request_fingerprint: Mapped[str] = mapped_column(String(128))
    job_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("jobs.id", ondelete="CASCADE"), index=True
    )
    """None while the first request with the key is still being accepted."""
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """The response sent to the first request, replayed to repeats."""
    completed_at: Mapped[datetime | None]

    # The relationship lets the unit of work insert the job row first.
    job: Mapped[Job | None] = relationship()

    __table_args__ = (UniqueConstraint("scope", "key"),)


class OutboxMessage(Base):
    """A task message to publish, written in the transaction that needs it.

    The relay publishes rows whose ``available_at`` has passed and sets
    ``sent_at`` once the broker confirmed the message. ``task_id`` is fixed when
    the row is written, so a message published twice carries the same id.
    """

    __tablename__ = "outbox_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("jobs.id", ondelete="CASCADE"), index=True
    )
    task_name: Mapped[str] = mapped_column(String(64))
    queue: Mapped[str] = mapped_column(String(32))
    task_id: Mapped[str] = mapped_column(String(64))
    args: Mapped[list[Any]] = mapped_column(JSON)
    retries: Mapped[int] = mapped_column(Integer, default=0)
    """Celery's retry number of the message (``request.retries`` of the task)."""

    created_at: Mapped[datetime]
    available_at: Mapped[datetime]
    """Earliest time to publish: now, the end of a retry delay, or the end of
    another relay's claim."""
    sent_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    """Publish attempts, the successful one included."""
    last_error: Mapped[str | None] = mapped_column(Text)
    trace_context: Mapped[dict[str, str] | None] = mapped_column(JSON)
    """W3C trace headers (``traceparent``, ``tracestate``) of the writer's span."""

    __table_args__ = (
        Index("ix_outbox_messages_sent_at_available_at", "sent_at", "available_at"),
    )
