"""Inbound WhatsApp messages are stored first and processed by the worker

Revision ID: 0010w
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010w"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        # Rows from before were processed when they were stored: "done".
        batch_op.add_column(
            sa.Column("status", sa.String(length=8), server_default="done", nullable=False)
        )
        batch_op.add_column(sa.Column("wa_number", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("wa_user_id", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("bot_number", sa.String(length=20), server_default="", nullable=False)
        )
        batch_op.add_column(sa.Column("profile_name", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("body", sa.Text(), server_default="", nullable=False))
        batch_op.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("last_error", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            "ix_inbound_messages_pending",
            ["received_at"],
            unique=False,
            sqlite_where=sa.text("status = 'pending'"),
            postgresql_where=sa.text("status = 'pending'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_inbound_messages_pending")
        for column in (
            "processed_at",
            "last_error",
            "attempts",
            "body",
            "profile_name",
            "bot_number",
            "wa_user_id",
            "wa_number",
            "status",
        ):
            batch_op.drop_column(column)
