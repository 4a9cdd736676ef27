"""PIN failures carry their namespace (per bot number guessing budget)

Revision ID: 0004d
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004d"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("pin_failures", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("namespace", sa.String(length=20), server_default="", nullable=False)
        )
        batch_op.create_index(
            "ix_pin_failures_namespace_created", ["namespace", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("pin_failures", schema=None) as batch_op:
        batch_op.drop_index("ix_pin_failures_namespace_created")
        batch_op.drop_column("namespace")
