"""Add the outbox table and the finalization lease columns of jobs.

Revision ID: 0002
Revises: 0001
Created: transactional outbox
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from pixtools_shared.db.models import UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("finalize_task_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("finalize_started_at", UTCDateTime(), nullable=True))
        batch.add_column(
            sa.Column("reopen_count", sa.Integer(), nullable=False, server_default="0")
        )

    op.create_table(
        "outbox_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("task_name", sa.String(64), nullable=False),
        sa.Column("queue", sa.String(32), nullable=False),
        sa.Column("task_id", sa.String(64), nullable=False),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("available_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
            name=op.f("fk_outbox_messages_job_id_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_messages")),
    )
    op.create_index(op.f("ix_outbox_messages_job_id"), "outbox_messages", ["job_id"])
    op.create_index(
        "ix_outbox_messages_sent_at_available_at",
        "outbox_messages",
        ["sent_at", "available_at"],
    )


def downgrade() -> None:
    op.drop_table("outbox_messages")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("reopen_count")
        batch.drop_column("finalize_started_at")
        batch.drop_column("finalize_task_id")
