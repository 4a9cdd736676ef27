"""The outbox claim's index: (status, next_attempt_at, id), in place of ix_outbox_due

Revision ID: 0011x
Revises: 0008c

The worker's claim (``messaging/worker.py _DUE``) filters on ``status = 'pending' AND
next_attempt_at <= :at`` and orders by ``next_attempt_at, id``: with ``id`` in the index
the scan returns the rows in that order and the ``LIMIT`` stops at the batch, whatever the
backlog; without it PostgreSQL could read every due row and sort them. The new index serves
every query ``ix_outbox_due`` served (same leading columns), so that one goes.

Built ``CONCURRENTLY`` on PostgreSQL (outside a transaction: every credit writes the
outbox, a plain ``CREATE INDEX`` would hold them for the build); the old index is dropped
only once the new one is there, so the claim never goes without one (docs/operations.md,
"Upgrades").
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011x"
down_revision: str | None = "0008c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _swap(create: str, columns: list[str], drop: str) -> None:
    if op.get_context().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.create_index(
                create, "outbox", columns, postgresql_concurrently=True, if_not_exists=True
            )
            op.drop_index(drop, table_name="outbox", postgresql_concurrently=True, if_exists=True)
    else:
        op.create_index(create, "outbox", columns)
        op.drop_index(drop, table_name="outbox")


def upgrade() -> None:
    _swap("ix_outbox_claim", ["status", "next_attempt_at", "id"], "ix_outbox_due")


def downgrade() -> None:
    _swap("ix_outbox_due", ["status", "next_attempt_at"], "ix_outbox_claim")
