"""Worker heartbeats (readiness and metrics: is anyone delivering the outbox?)

Revision ID: 0009o
Revises: 0008b

Expand-only: a new table nobody reads before this code, so the previous release keeps
serving while it runs (docs/operations.md, "Upgrades").
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009o"
down_revision: str | None = "0008b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "worker_heartbeats",
        sa.Column("worker", sa.String(length=200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("worker", name=op.f("pk_worker_heartbeats")),
    )
    op.create_index("ix_worker_heartbeats_at", "worker_heartbeats", ["at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_worker_heartbeats_at", table_name="worker_heartbeats")
    op.drop_table("worker_heartbeats")
