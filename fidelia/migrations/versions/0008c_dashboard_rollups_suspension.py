"""dashboard rollups, markers (watermarks, worker heartbeat), merchant suspension,
outbox by merchant

Revision ID: 0008c
Revises: 0008a
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008c"
down_revision: str | None = "0008a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_outbox_tenant", "outbox", ["tenant_id", "id"], unique=False)
    op.create_table(
        "daily_rollups",
        sa.Column("tenant_id", ID, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("program_id", ID, nullable=False),
        *(
            sa.Column(name, sa.BigInteger(), nullable=False)
            for name in (
                "points_issued",
                "points_redeemed",
                "points_net",
                "cashback_issued",
                "cashback_redeemed",
                "cashback_net",
            )
        ),
        *(
            sa.Column(name, sa.Integer(), nullable=False)
            for name in (
                "pins_issued",
                "pins_activated",
                "new_customers",
                "redemptions",
                "member_orders",
            )
        ),
        sa.Column("member_sales", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_daily_rollups_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("tenant_id", "day", name=op.f("pk_daily_rollups")),
    )
    op.create_index("ix_daily_rollups_program", "daily_rollups", ["program_id"], unique=False)
    op.create_table(
        "rollup_customer_days",
        sa.Column("tenant_id", ID, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("customer_id", ID, nullable=False),
        sa.Column("sales", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_rollup_customer_days_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id", "day", "customer_id", name=op.f("pk_rollup_customer_days")
        ),
    )
    op.create_table(
        "rollup_reward_days",
        sa.Column("tenant_id", ID, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("reward_id", ID, nullable=False),
        sa.Column("redemptions", sa.Integer(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_rollup_reward_days_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id", "day", "reward_id", name=op.f("pk_rollup_reward_days")
        ),
    )
    op.create_table(
        "markers",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("number", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_markers")),
    )


def downgrade() -> None:
    op.drop_table("markers")
    op.drop_table("rollup_reward_days")
    op.drop_table("rollup_customer_days")
    op.drop_index("ix_daily_rollups_program", table_name="daily_rollups")
    op.drop_table("daily_rollups")
    op.drop_index("ix_outbox_tenant", table_name="outbox")
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("suspended_at")
