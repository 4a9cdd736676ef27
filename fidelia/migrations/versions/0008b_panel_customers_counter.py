"""panel customers and counter: customers.name_key (folded name, prefix-indexed) and the
adjustments table (manual credits and debits: who and why)

Revision ID: 0008b
Revises: 0006b
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import fidelia.models.base
from fidelia.kit.names import fold

revision: str = "0008b"
down_revision: str | None = "0006b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = fidelia.models.base.UTCDateTime
NAME_KEY = sa.String(200).with_variant(sa.String(200, collation="C"), "postgresql")
BATCH = 5000


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("name_key", NAME_KEY, nullable=True))
    customers = sa.table(
        "customers", sa.column("id", BigId), sa.column("name"), sa.column("name_key")
    )
    bind = op.get_bind()
    last = 0
    while True:
        rows = bind.execute(
            sa.select(customers.c.id, customers.c.name)
            .where(customers.c.id > last, customers.c.name.is_not(None))
            .order_by(customers.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        bind.execute(
            customers.update()
            .where(customers.c.id == sa.bindparam("cid"))
            .values(name_key=sa.bindparam("key")),
            [{"cid": cid, "key": fold(name)} for cid, name in rows],
        )
        last = rows[-1][0]
    op.create_index(
        "ix_customers_program_name_key", "customers", ["program_id", "name_key"], unique=False
    )
    op.create_index("ix_customers_program_newest", "customers", ["program_id", "id"], unique=False)
    op.create_table(
        "adjustments",
        sa.Column("id", BigId, nullable=False),
        sa.Column("tenant_id", BigId, nullable=False),
        sa.Column("program_id", BigId, nullable=False),
        sa.Column("customer_id", BigId, nullable=False),
        sa.Column("account", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("user_id", BigId, nullable=True),
        sa.Column("actor_label", sa.String(length=200), nullable=False),
        sa.Column("created_at", When(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_adjustments_tenant_id_tenants")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_adjustments_program_id_programs")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_adjustments_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_adjustments_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_adjustments")),
    )
    op.create_index(
        op.f("ix_adjustments_customer_id"), "adjustments", ["customer_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_adjustments_customer_id"), table_name="adjustments")
    op.drop_table("adjustments")
    op.drop_index("ix_customers_program_newest", table_name="customers")
    op.drop_index("ix_customers_program_name_key", table_name="customers")
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("name_key")
