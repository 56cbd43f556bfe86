"""Durable queue: leases with fencing tokens, the caller's deadline, cancel requests.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable columns and a constant default: no table rewrite. Unfinished tasks of an
    # older server have no lease, so any replica claims them at once.
    op.add_column("tasks", sa.Column("deadline", sa.DateTime(timezone=True), nullable=True))
    op.add_column("tasks", sa.Column("lease_owner", sa.String(), nullable=True))
    op.add_column(
        "tasks",
        sa.Column("lease_token", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
    )
    op.add_column("tasks", sa.Column("lease_expires", sa.DateTime(timezone=True), nullable=True))
    op.add_column("tasks", sa.Column("cancel_reason", sa.Text(), nullable=True))
    op.create_index(
        "ix_tasks_state_priority_create_time",
        "tasks",
        ["state", sa.literal_column("priority DESC"), "create_time"],
    )


def downgrade() -> None:
    # Plain DROP COLUMN (see 0002 on why not a batch copy).
    op.drop_index("ix_tasks_state_priority_create_time", table_name="tasks")
    for name in ("cancel_reason", "lease_expires", "lease_token", "lease_owner", "deadline"):
        op.drop_column("tasks", name)
