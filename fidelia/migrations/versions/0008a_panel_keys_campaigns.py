"""panel (issue 11): API key names and last use; earning rules and segments can be disabled

Revision ID: 0008a
Revises: 0009o
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import fidelia.models.base

revision: str = "0008a"
down_revision: str | None = "0009o"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

When = fidelia.models.base.UTCDateTime


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("name", sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column("last_used_at", When(), nullable=True))
    for table in ("earning_rules", "segments"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column("active", sa.Boolean(), server_default=sa.true(), nullable=False)
            )


def downgrade() -> None:
    for table in ("segments", "earning_rules"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("active")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("last_used_at")
        batch_op.drop_column("name")
