"""How the schema spreads over a Citus cluster (docs/scaling.md): every table is either
distributed by a shard key, a reference table copied to every node, or a local table on
the coordinator. tests/ops/test_sharding.py checks this plan against the models: every table
is placed, and every unique index of a distributed table carries its shard key (Citus
enforces uniqueness per shard only), except the few listed in ``PENDING`` with the index
that replaces them before the move.

The surrogate primary key ``id`` is not listed: at the move it becomes ``(shard key, id)``
(ids stay unique through their sequence), a mechanical step of the Citus migration.
"""

from dataclasses import dataclass
from typing import Literal

Kind = Literal["distributed", "reference", "local"]


@dataclass(frozen=True)
class Placement:
    kind: Kind
    key: str | None = None  # shard key of a distributed table
    colocate: str | None = None  # colocation group: joins and transactions stay on one node
    why: str = ""


def program(why: str) -> Placement:
    return Placement("distributed", "program_id", "program", why)


def reference(why: str) -> Placement:
    return Placement("reference", why=why)


PLAN: dict[str, Placement] = {
    # -- The money: one program (a merchant, or a group sharing one balance) per shard. -----
    "customers": program("a customer belongs to one program"),
    "customer_identifiers": program("lookups by document/phone/e-mail within a program"),
    "balances": program("the balance a debit locks"),
    "ledger_entries": program("appended in the balance's transaction"),
    "events": program("behavioural events earn points in the program"),
    "vouchers": program("issued to the program's customers"),
    "redemptions": program("debits the program's balance"),
    "orders": program("earns and refunds in the program"),
    "loyalty_payments": program("debits the program's balance"),
    "adjustments": program("a manual adjustment of the program's balance"),
    # -- Small, read everywhere, written rarely: copied to every node. -----------------------
    "programs": reference("joined with every program-sharded table"),
    "tenants": reference("resolved on every request (credentials -> merchant)"),
    "rewards": reference("catalogue, joined with redemptions"),
    "categories": reference("catalogue"),
    "earning_rules": reference("catalogue"),
    "segments": reference("catalogue"),
    "deals": reference("catalogue"),
    "api_keys": reference("credentials, looked up by digest on every request"),
    "users": reference("panel accounts"),
    "invitations": reference("panel accounts"),
    "login_failures": reference("panel sign-in limits, pruned"),
    "bling_connections": reference("one per merchant"),
    "bling_oauth_states": reference("short-lived"),
    "message_templates": reference("a merchant's template mapping"),
    "voucher_rules": reference("a merchant's rules, read with every sale"),
    # -- Distributed by their own key (not colocated with the money). ------------------------
    "pins": Placement(
        "distributed",
        "namespace",
        "namespace",
        "a bot number's PIN namespace: unique open codes per bot number",
    ),
    "pin_failures": Placement(
        "distributed", "namespace", "namespace", "the namespace guard counts per bot number"
    ),
    "whatsapp_contacts": Placement(
        "distributed", "wa_number", None, "the platform-wide WhatsApp contact book"
    ),
    "inbound_messages": Placement("distributed", "message_id", None, "webhook dedupe by id"),
    "access_tokens": Placement("distributed", "digest", None, "looked up by digest only"),
    "idempotency_keys": Placement("distributed", "tenant_id", "tenant", "per merchant, by its key"),
    "challenges": Placement("distributed", "tenant_id", "tenant", "per merchant"),
    "consents": Placement("distributed", "tenant_id", "tenant", "per merchant"),
    "order_refunds": Placement("distributed", "tenant_id", "tenant", "per merchant"),
    "voucher_uses": Placement("distributed", "tenant_id", "tenant", "per merchant"),
    "audit_log": Placement("distributed", "tenant_id", "tenant", "append-only, per merchant"),
    "bling_events": Placement("distributed", "tenant_id", "tenant", "per connection"),
    "bling_imports": Placement("distributed", "tenant_id", "tenant", "per connection"),
    "message_log": Placement("distributed", "tenant_id", "tenant", "per merchant, by key"),
    "daily_rollups": Placement("distributed", "tenant_id", "tenant", "the dashboard, per merchant"),
    "rollup_reward_days": Placement("distributed", "tenant_id", "tenant", "per merchant"),
    "rollup_customer_days": Placement("distributed", "tenant_id", "tenant", "per merchant"),
    # -- Local to the coordinator. ------------------------------------------------------------
    "outbox": Placement(
        "local", why="a queue: workers claim with FOR UPDATE SKIP LOCKED on one node"
    ),
    "worker_heartbeats": Placement("local", why="a few rows"),
    "markers": Placement("local", why="the rollups' watermarks: a few rows"),
    "simulator_messages": Placement("local", why="development only"),
    "alembic_version": Placement("local", why="migrations"),
}

# Unique indexes of distributed tables that do not carry the shard key yet, and what is done
# about each before the move (expand: build the new index concurrently; contract: drop the
# old one once no code uses it as an ON CONFLICT target). A merchant's program never changes
# once it has customers (tenants.service.create_group), so (tenant_id, x) and
# (program_id, tenant_id, x) are the same constraint.
PENDING: dict[tuple[str, tuple[str, ...]], str] = {
    ("orders", ("tenant_id", "original_id")): "unique (program_id, tenant_id, original_id)",
    ("vouchers", ("tenant_id", "code")): "unique (program_id, tenant_id, code)",
    ("vouchers", ("customer_id", "campaign")): "unique (program_id, customer_id, campaign)",
    ("redemptions", ("tenant_id", "original_key")): (
        "unique (program_id, tenant_id, original_key)"
    ),
    ("redemptions", ("external_code",)): (
        "unique (program_id, external_code); codes are looked up with the merchant, whose "
        "program is known"
    ),
    ("loyalty_payments", ("tenant_id", "confirmation_code")): (
        "unique (program_id, tenant_id, confirmation_code)"
    ),
    ("whatsapp_contacts", ("wa_user_id",)): (
        "a lookup table wa_user_ids(wa_user_id -> wa_number) distributed by wa_user_id, "
        "written in the contact's transaction"
    ),
    ("order_refunds", ("order_id", "cancel_key")): "unique (tenant_id, order_id, cancel_key)",
    ("bling_events", ("event_id",)): "unique (tenant_id, event_id)",
}
