"""issue 13: point validity, automatic messages (templates, log), vouchers by rule

Revision ID: 0006b
Revises: 0010w
Create Date: 2026-11-25 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006b"
down_revision: str | None = "0010w"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
INTS = {
    "points_validity_days": "0",
    "expiry_reminder_days": "7",
    "come_back_days": "30",
    "message_cap": "2",
    "message_cap_days": "7",
}
SWITCHES = (
    "message_benefit_earned",
    "message_voucher_issued",
    "message_points_expiring",
    "message_come_back",
)


def upgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        for name, default in INTS.items():
            batch_op.add_column(
                sa.Column(name, sa.Integer(), server_default=default, nullable=False)
            )
        for name in SWITCHES:
            batch_op.add_column(sa.Column(name, sa.Boolean(), server_default="0", nullable=False))
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.create_index("ix_ledger_entries_expires_at", ["expires_at"], unique=False)
    op.create_table(
        "message_templates",
        sa.Column("id", ID, nullable=False),
        sa.Column("tenant_id", ID, nullable=False),
        sa.Column("event", sa.String(length=24), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_message_templates_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_templates")),
        sa.UniqueConstraint(
            "tenant_id",
            "event",
            "channel",
            name=op.f("uq_message_templates_tenant_id_event_channel"),
        ),
    )
    op.create_table(
        "message_log",
        sa.Column("id", ID, nullable=False),
        sa.Column("tenant_id", ID, nullable=False),
        sa.Column("customer_id", ID, nullable=False),
        sa.Column("event", sa.String(length=24), nullable=False),
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("marketing", sa.Boolean(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=True),
        sa.Column("form", sa.String(length=16), nullable=True),
        sa.Column("skipped", sa.String(length=40), nullable=True),
        sa.Column("outbox_id", ID, nullable=True),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_message_log_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["outbox_id"], ["outbox.id"], name=op.f("fk_message_log_outbox_id_outbox")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_message_log_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_log")),
        sa.UniqueConstraint(
            "tenant_id", "event", "key", name=op.f("uq_message_log_tenant_id_event_key")
        ),
    )
    with op.batch_alter_table("message_log", schema=None) as batch_op:
        batch_op.create_index(
            "ix_message_log_customer_time", ["customer_id", "created_at"], unique=False
        )
    op.create_table(
        "voucher_rules",
        sa.Column("id", ID, nullable=False),
        sa.Column("tenant_id", ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("threshold", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("benefit", sa.String(length=300), nullable=False),
        sa.Column("valid_days", sa.Integer(), nullable=False),
        sa.Column("repeat", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_voucher_rules_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voucher_rules")),
    )
    with op.batch_alter_table("voucher_rules", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_voucher_rules_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("voucher_rules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_voucher_rules_tenant_id"))
    op.drop_table("voucher_rules")
    with op.batch_alter_table("message_log", schema=None) as batch_op:
        batch_op.drop_index("ix_message_log_customer_time")
    op.drop_table("message_log")
    op.drop_table("message_templates")
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_entries_expires_at")
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        for name in (*SWITCHES, *INTS):
            batch_op.drop_column(name)
