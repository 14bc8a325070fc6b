"""Store the trace context of each outbox message.

Revision ID: 0004
Revises: 0003
Created: the W3C trace context of the transaction that wrote an outbox row

A row that beat relays later (a failed publish, a delayed retry) is published
inside the trace that wrote it, not a new one.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_messages") as batch:
        batch.add_column(sa.Column("trace_context", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox_messages") as batch:
        batch.drop_column("trace_context")
