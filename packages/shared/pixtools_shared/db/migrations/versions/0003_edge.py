"""Add job owners, the webhook status code and stored idempotent responses.

Revision ID: 0003
Revises: 0002
Created: API keys, idempotency reservations, webhook delivery details

``idempotency_records.job_id`` becomes nullable: the API inserts the record
before it stores anything (the reservation of the key) and fills in the job and
the response when the job is committed.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from pixtools_shared.db.models import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("owner", sa.String(64), nullable=True))
        batch.add_column(
            sa.Column("webhook_last_status_code", sa.Integer(), nullable=True)
        )

    with op.batch_alter_table("idempotency_records") as batch:
        batch.alter_column("job_id", existing_type=sa.String(36), nullable=True)
        batch.add_column(sa.Column("response_status", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("response_body", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("completed_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    # Records still reserving a key have no job and cannot be kept.
    op.execute("DELETE FROM idempotency_records WHERE job_id IS NULL")
    with op.batch_alter_table("idempotency_records") as batch:
        batch.drop_column("completed_at")
        batch.drop_column("response_body")
        batch.drop_column("response_status")
        batch.alter_column("job_id", existing_type=sa.String(36), nullable=False)

    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("webhook_last_status_code")
        batch.drop_column("owner")
