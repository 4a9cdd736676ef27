"""seed 003: Bling connector (connections, OAuth states, webhook events, imports)

Revision ID: 0006a
Revises: 0004a
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import fidelia.models.base

revision: str = "0006a"
down_revision: str | None = "0004a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = fidelia.models.base.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "bling_connections",
        sa.Column("id", BigId, nullable=False),
        sa.Column("tenant_id", BigId, nullable=False),
        sa.Column("company_id", sa.String(length=64), nullable=True),
        sa.Column("company_name", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("access_token", sa.Text(), nullable=True),
        sa.Column("refresh_token", sa.Text(), nullable=True),
        sa.Column("access_expires_at", When(), nullable=True),
        sa.Column("token_version", sa.Integer(), nullable=False),
        sa.Column("earning_situations", sa.JSON(), nullable=False),
        sa.Column("cancelled_situations", sa.JSON(), nullable=False),
        sa.Column("connected_at", When(), nullable=True),
        sa.Column("last_sync_at", When(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", When(), nullable=True),
        sa.Column("reconciled_until", When(), nullable=True),
        sa.Column("created_at", When(), nullable=False),
        sa.Column("updated_at", When(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_bling_connections_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bling_connections")),
        sa.UniqueConstraint("company_id", name=op.f("uq_bling_connections_company_id")),
        sa.UniqueConstraint("tenant_id", name=op.f("uq_bling_connections_tenant_id")),
    )
    op.create_table(
        "bling_oauth_states",
        sa.Column("id", BigId, nullable=False),
        sa.Column("tenant_id", BigId, nullable=False),
        sa.Column("state_digest", sa.String(length=64), nullable=False),
        sa.Column("binding_digest", sa.String(length=64), nullable=False),
        sa.Column("expires_at", When(), nullable=False),
        sa.Column("used_at", When(), nullable=True),
        sa.Column("created_at", When(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_bling_oauth_states_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bling_oauth_states")),
        sa.UniqueConstraint("state_digest", name=op.f("uq_bling_oauth_states_state_digest")),
    )
    op.create_index(
        op.f("ix_bling_oauth_states_tenant_id"), "bling_oauth_states", ["tenant_id"], unique=False
    )
    op.create_index(
        op.f("ix_bling_oauth_states_binding_digest"),
        "bling_oauth_states",
        ["binding_digest"],
        unique=False,
    )
    op.create_table(
        "bling_events",
        sa.Column("id", BigId, nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("company_id", sa.String(length=64), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("tenant_id", BigId, nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", When(), nullable=False),
        sa.Column("locked_until", When(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("received_at", When(), nullable=False),
        sa.Column("processed_at", When(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_bling_events_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bling_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_bling_events_event_id")),
    )
    op.create_index("ix_bling_events_due", "bling_events", ["status", "next_attempt_at"])
    op.create_table(
        "bling_imports",
        sa.Column("id", BigId, nullable=False),
        sa.Column("tenant_id", BigId, nullable=False),
        sa.Column("since", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("phase", sa.String(length=8), nullable=False),
        sa.Column("page", sa.Integer(), nullable=False),
        sa.Column("contacts", sa.Integer(), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("earned", sa.Integer(), nullable=False),
        sa.Column("runner", sa.String(length=120), nullable=True),
        sa.Column("locked_until", When(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", When(), nullable=False),
        sa.Column("updated_at", When(), nullable=False),
        sa.Column("finished_at", When(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_bling_imports_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bling_imports")),
    )
    op.create_index(
        op.f("ix_bling_imports_tenant_id"), "bling_imports", ["tenant_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_bling_imports_tenant_id"), table_name="bling_imports")
    op.drop_table("bling_imports")
    op.drop_index("ix_bling_events_due", table_name="bling_events")
    op.drop_table("bling_events")
    op.drop_index(op.f("ix_bling_oauth_states_binding_digest"), table_name="bling_oauth_states")
    op.drop_index(op.f("ix_bling_oauth_states_tenant_id"), table_name="bling_oauth_states")
    op.drop_table("bling_oauth_states")
    op.drop_table("bling_connections")
