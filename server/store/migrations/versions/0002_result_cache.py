"""Result cache: the per-task opt-out and the cached-result mark.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("no_cache", "cached")


def upgrade() -> None:
    # ADD COLUMN with a constant default: no table rewrite on either database, and
    # existing tasks read as "not opted out, not cached".
    for name in _COLUMNS:
        op.add_column(
            "tasks", sa.Column(name, sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+), not a batch copy-and-move: recreating `tasks`
    # would drop the old table with foreign keys on, which deletes every task event
    # through ON DELETE CASCADE.
    for name in reversed(_COLUMNS):
        op.drop_column("tasks", name)
