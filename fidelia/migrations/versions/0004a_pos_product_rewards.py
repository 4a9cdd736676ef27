"""seed 001: product rewards a POS can apply (product id, name, discount mode, units)

Revision ID: 0004a
Revises: 0004b
Create Date: 2026-11-23 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004a"
down_revision: str | None = "0004b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("rewards", schema=None) as batch_op:
        batch_op.add_column(sa.Column("external_product_id", sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column("product_name", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("product_discount_mode", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("product_max_units", sa.Integer(), nullable=True))
    # Product rewards made before: their value was a currency amount off the product.
    op.execute(
        "UPDATE rewards SET product_discount_mode = 'fixed', product_max_units = 1 "
        "WHERE reward_type = 'product'"
    )


def downgrade() -> None:
    with op.batch_alter_table("rewards", schema=None) as batch_op:
        batch_op.drop_column("product_max_units")
        batch_op.drop_column("product_discount_mode")
        batch_op.drop_column("product_name")
        batch_op.drop_column("external_product_id")
